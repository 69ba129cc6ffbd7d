"""The HTTP API through a real socket: events, responses, errors, keep-alive, limits.

The event's reference is the payload format 2.0 example of the AWS API Gateway Developer Guide
("Create AWS Lambda proxy integrations for HTTP APIs"), kept as
``events/apigw-http-v2-docs-example.json``.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import load_event
from tests.emulator.harness import RunningEmulator, app_emulator, running


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningEmulator]:
    with running(app_emulator(env_vars=None)) as running_emulator:
        yield running_emulator


def _echo(gateway: RunningEmulator, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    status, body = gateway.json(method, path, **kwargs)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def test_http_event_matches_aws_reference_event_shape(gateway: RunningEmulator) -> None:
    reference = load_event("apigw-http-v2-docs-example")
    event = _echo(
        gateway,
        "POST",
        "/public/my/path?parameter1=value1&parameter1=value2&parameter2=value",
        body="Hello from Lambda",
        headers={"Header1": "value1", "Cookie": "cookie1; cookie2", "Content-Type": "text/plain"},
    )["event"]

    # Present in AWS's example only with mTLS, a JWT authorizer and stage variables respectively.
    del reference["requestContext"]["authentication"], reference["requestContext"]["authorizer"]
    del reference["stageVariables"]
    assert set(event) == set(reference)
    assert set(event["requestContext"]) == set(reference["requestContext"])
    assert _shape(event["requestContext"]["http"]) == _shape(reference["requestContext"]["http"])
    for key in ("version", "rawQueryString", "cookies", "queryStringParameters", "body"):
        assert event[key] == reference[key], key
    assert event["isBase64Encoded"] is False
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "ANY /public/{proxy+}"
    assert event["pathParameters"] == {"proxy": "my/path"}
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/public/my/path"
    context = event["requestContext"]
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert isinstance(context["timeEpoch"], int)
    assert context["timeEpoch"] > 1_600_000_000_000
    assert context["stage"] == "$default"
    assert context["http"]["protocol"] == "HTTP/1.1"
    assert context["http"]["sourceIp"] == "127.0.0.1"


def test_http_event_lowercases_headers_and_joins_repeats_with_commas(
    gateway: RunningEmulator,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.putrequest("GET", "/public/exact")
    connection.putheader("X-Repeat", "one")
    connection.putheader("x-repeat", "two")
    connection.putheader("User-Agent", "tester/1")
    connection.endheaders()
    event = json.loads(connection.getresponse().read())["event"]
    connection.close()
    assert event["headers"]["x-repeat"] == "one,two"
    assert event["requestContext"]["http"]["userAgent"] == "tester/1"
    assert all(name == name.lower() for name in event["headers"])
    assert "cookies" not in event
    assert "queryStringParameters" not in event
    assert "body" not in event
    assert event["rawQueryString"] == ""


def test_http_event_base64_encodes_binary_body(gateway: RunningEmulator) -> None:
    payload = bytes(range(256))
    event = _echo(
        gateway,
        "POST",
        "/items",
        body=payload,
        headers={"Content-Type": "application/octet-stream"},
    )["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_http_api_round_trips_binary_body_through_function(gateway: RunningEmulator) -> None:
    payload = bytes(range(256)) * 10
    status, _, body = gateway.request(
        "POST", "/behave/echo-body", body=payload, headers={"Content-Type": "image/png"}
    )
    assert status == 200
    assert body == payload


def test_http_api_reads_bare_string_and_object_answers_as_json_200(
    gateway: RunningEmulator,
) -> None:
    status, headers, body = gateway.request("GET", "/behave/string")
    assert (status, headers["content-type"], body) == (200, "application/json", b'"just a string"')
    status, headers, body = gateway.request("GET", "/behave/object")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"hello": "world"}


def test_http_api_turns_cookies_into_set_cookie_headers(gateway: RunningEmulator) -> None:
    status, headers, body = gateway.request("POST", "/behave/cookies")
    assert status == 201
    assert body == b"made"
    assert headers["set-cookie"].split("\n") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert headers["x-one"] == "1"
    assert headers["apigw-requestid"]


def test_http_api_decodes_base64_answer_to_binary(gateway: RunningEmulator) -> None:
    status, headers, body = gateway.request("GET", "/behave/binary")
    assert status == 200
    assert headers["content-type"] == "application/octet-stream"
    assert body == bytes(range(256))


def test_http_api_answers_404_not_found_without_route() -> None:
    # The test application has a $default route, so this needs an API without one.
    emulator = app_emulator()
    assert emulator.api is not None
    emulator.api = emulator.api.__class__(
        logical_id=emulator.api.logical_id,
        api_id=emulator.api.api_id,
        routes=tuple(r for r in emulator.api.routes if r.path != "$default"),
        authorizers=emulator.api.authorizers,
        cors=emulator.api.cors,
    )
    with running(emulator) as gateway:
        status, headers, body = gateway.request("GET", "/nowhere")
    assert status == 404
    assert json.loads(body) == {"message": "Not Found"}
    assert headers["content-type"] == "application/json"


def test_http_api_sends_unmatched_request_to_default_route(gateway: RunningEmulator) -> None:
    event = _echo(gateway, "DELETE", "/nowhere/at/all")["event"]
    assert event["routeKey"] == "$default"
    assert "pathParameters" not in event


@pytest.mark.parametrize("mode", ["crash", "exit", "malformed", "unserialisable", "huge"])
def test_http_api_answers_500_when_function_fails_or_answers_badly(
    gateway: RunningEmulator, mode: str
) -> None:
    status, body = gateway.json("GET", f"/behave/{mode}")
    assert status == 500
    assert body == {"message": "Internal Server Error"}


def test_http_api_answers_503_and_replaces_worker_after_function_timeout(
    gateway: RunningEmulator,
) -> None:
    status, body = gateway.json("GET", "/behave/sleep")
    assert status == 503
    assert body == {"message": "Service Unavailable"}
    status, body = gateway.json("GET", "/behave/object")
    assert (status, body) == (200, {"hello": "world"})


def test_http_api_refuses_body_over_10_mb_with_413_before_reading_it(
    gateway: RunningEmulator,
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 10485761\r\n"
            b"Content-Type: text/plain\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'{"message":"Request Entity Too Large"}' in answer


def test_http_api_serves_many_requests_on_one_keep_alive_connection(
    gateway: RunningEmulator,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    local_ports = set()
    for index in range(5):
        connection.request("GET", f"/public/n{index}")
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 200
        assert body["event"]["pathParameters"] == {"name": f"n{index}"}
        assert connection.sock is not None
        local_ports.add(connection.sock.getsockname()[1])
    connection.close()
    assert len(local_ports) == 1


def test_http_api_reads_chunked_request_body(gateway: RunningEmulator) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /behave/echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: text/plain\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nhello world")


def test_http_api_answers_400_to_garbage_request_line(gateway: RunningEmulator) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")
    status, _ = gateway.json("GET", "/behave/object")
    assert status == 200

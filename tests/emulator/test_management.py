"""The ``@connections`` management API, driven by boto3's ``apigatewaymanagementapi`` client against
the emulator's real socket, with real WebSocket clients on the other end."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.emulator.ws_harness import RunningApp, running_app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("mgmt")) as running:
        yield running


def management(endpoint: str) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def client(app: RunningApp) -> Any:
    return management(app.server.management_url)


def connection_id_of(ws: ClientConnection) -> str:
    ws.send(json.dumps({"action": "echo"}))
    answer = ws.recv(timeout=10)
    assert isinstance(answer, str)
    return str(json.loads(answer)["event"]["requestContext"]["connectionId"])


def test_management_get_answers_connected_at_last_active_at_and_identity(
    app: RunningApp, client: Any
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    with connect(app.url("token=good"), open_timeout=10, user_agent_header="board-test/1.0") as ws:
        connection_id = connection_id_of(ws)
        answer = client.get_connection(ConnectionId=connection_id)

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "board-test/1.0"}
    assert before <= answer["ConnectedAt"] <= answer["LastActiveAt"] <= datetime.now(UTC)


def test_management_post_delivers_text_and_binary_data_to_the_client(
    app: RunningApp, client: Any
) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        client.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": "board"}')
        text = ws.recv(timeout=10)
        client.post_to_connection(ConnectionId=connection_id, Data=b"\xff\x00raw")
        binary = ws.recv(timeout=10)

    assert text == '{"hello": "board"}'
    assert binary == b"\xff\x00raw"


def test_management_post_over_32_kb_reaches_the_client_as_one_message(
    app: RunningApp, client: Any
) -> None:
    data = ("é" * 50_000).encode()  # 100,000 bytes: four frames, split inside characters
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        client.post_to_connection(ConnectionId=connection_id, Data=data)
        received = ws.recv(timeout=10)

    assert received == data.decode()


def test_management_post_over_128_kb_is_refused_with_payload_too_large(
    app: RunningApp, client: Any
) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        with pytest.raises(client.exceptions.PayloadTooLargeException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))


def test_management_delete_closes_the_connection_and_runs_disconnect(
    app: RunningApp, client: Any
) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        answer = client.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1000
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        event["requestContext"]["connectionId"] == connection_id
        and event["requestContext"]["routeKey"] == "$disconnect"
        for event in app.events()
    ):
        time.sleep(0.05)
    assert any(
        event["requestContext"]["routeKey"] == "$disconnect"
        and event["requestContext"]["connectionId"] == connection_id
        for event in app.events()
    )
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
def test_management_unknown_connection_is_gone_with_410(client: Any, operation: str) -> None:
    kwargs: dict[str, Any] = {"ConnectionId": "Zm9vYmFyYmF6cXV4="}
    if operation == "post_to_connection":
        kwargs["Data"] = b"hello"

    with pytest.raises(client.exceptions.GoneException) as gone:
        getattr(client, operation)(**kwargs)

    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert gone.value.response["Error"]["Code"] == "GoneException"


def test_management_closed_connection_is_gone_with_410(app: RunningApp, client: Any) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and app.server.registry.get(connection_id) is not None:
        time.sleep(0.05)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")


def test_management_endpoint_without_stage_path_is_served_too(app: RunningApp) -> None:
    client = management(app.server.url.replace("ws://", "http://"))
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        client.post_to_connection(ConnectionId=connection_id, Data=b"no stage")
        assert ws.recv(timeout=10) == "no stage"


def test_management_path_outside_connections_is_forbidden(app: RunningApp) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", app.server.port, timeout=10)
    try:
        connection.request("GET", "/test/elsewhere")
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()

    assert response.status == 403
    assert body["message"] == "Forbidden"


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` bytes as they are and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT-HTTP\r\n\r\n",
        b"POST /test/@connections/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /test/@connections/x HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"GET /test/@connections/x HTTP/1.1\r\nno colon here\r\n\r\n",
    ],
)
def test_management_malformed_request_is_answered_400_and_closed(
    app: RunningApp, request_bytes: bytes
) -> None:
    answer = raw_exchange(app.server.port, request_bytes)

    assert answer.startswith(b"HTTP/1.1 400 ")


def test_management_pipelined_requests_are_answered_in_order(app: RunningApp) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        requests = b"".join(
            f"POST /test/@connections/{connection_id} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(str(n))}\r\n\r\n{n}".encode()
            for n in range(50)
        )
        gone = b"GET /test/@connections/gone= HTTP/1.1\r\nConnection: close\r\n\r\n"
        answer = raw_exchange(app.server.port, requests + gone)
        received = [ws.recv(timeout=10) for _ in range(50)]

    assert answer.count(b"HTTP/1.1 200 OK") == 50
    assert answer.rstrip().endswith(b"}")
    assert b"HTTP/1.1 410 Gone" in answer.split(b"HTTP/1.1 200 OK")[-1]
    assert received == [str(n) for n in range(50)]

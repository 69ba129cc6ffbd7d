"""The lean Management API client over a real loopback socket: the request it sends (path, body,
a signature botocore agrees with), how it reads API Gateway's error answers, and that its posts
share one keep-alive connection."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from devstack.services import free_port
from gateway.rooms.sender import ManagementApi, ManagementApiError, region_of
from gateway.rooms.sigv4 import CredentialSource
from gateway.upstream.errors import UpstreamError
from tests.support.loopback import LoopbackServer

KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token/+="


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]


@dataclass
class Endpoint:
    """A loopback ``@connections`` endpoint answering with ``answer`` and keeping each request."""

    server: LoopbackServer
    received: list[Received] = field(default_factory=list)
    answer: tuple[int, list[tuple[str, str]], bytes] = (200, [], b"")

    @property
    def url(self) -> str:
        return f"{self.server.origin}/dev"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    lock = threading.Lock()
    holder: list[Endpoint] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state = holder[0]
            with lock:
                state.received.append(
                    Received(
                        "POST", self.path, dict(self.headers.items()), body, self.client_address
                    )
                )
                status, headers, payload = state.answer
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = LoopbackServer(Handler)
    holder.append(Endpoint(server))
    server.start()
    yield holder[0]
    server.stop()


def _api(url: str, token: str | None = None, **kwargs: Any) -> ManagementApi:
    environ = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    if token:
        environ["AWS_SESSION_TOKEN"] = token
    return ManagementApi(url, pool_size=4, credentials=CredentialSource(environ), **kwargs)


@pytest.mark.parametrize("token", [None, TOKEN], ids=["long-term", "session-token"])
def test_post_sends_the_message_to_the_encoded_connection_path_signed_as_botocore_signs(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    api = _api(endpoint.url, token, region="eu-west-3")

    api.post("L0SM9cOFvHcCIhw=", b'{"type": "ticket.updated"}')
    api.close()

    (request,) = endpoint.received
    assert request.path == "/dev/@connections/L0SM9cOFvHcCIhw%3D"
    assert request.body == b'{"type": "ticket.updated"}'
    assert request.headers["Host"] == f"127.0.0.1:{endpoint.server.port}"
    assert request.headers.get("X-Amz-Security-Token") == token

    # botocore, given the same instant, request and credentials, signs it identically.
    when = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: when)
    reference = AWSRequest(
        method="POST", url=endpoint.server.origin + request.path, data=request.body
    )
    SigV4Auth(BotocoreCredentials(KEY, SECRET, token), "execute-api", "eu-west-3").add_auth(
        reference
    )
    assert request.headers["Authorization"] == reference.headers["Authorization"]


def test_posts_share_one_keep_alive_connection(endpoint: Endpoint) -> None:
    api = _api(endpoint.url)

    for index in range(20):
        api.post(f"c-{index}", b"{}")
    api.close()

    assert len(endpoint.received) == 20
    assert len({request.peer for request in endpoint.received}) == 1


@pytest.mark.parametrize(
    ("status", "headers", "body", "code", "message"),
    [
        (
            410,
            [("x-amzn-ErrorType", "GoneException:http://internal.amazon.com/coral/")],
            b'{"message": null}',
            "GoneException",
            "",
        ),
        (
            429,
            [("Content-Type", "application/json")],
            b'{"__type": "com.amazonaws.apigateway#LimitExceededException", "message": "Slow"}',
            "LimitExceededException",
            "Slow",
        ),
        (
            429,
            [],
            b'{"code": "TooManyRequestsException", "Message": "Too Many Requests"}',
            "TooManyRequestsException",
            "Too Many Requests",
        ),
        (403, [], b'{"Message": "Forbidden"}', "403", "Forbidden"),
        (502, [], b"<html>Bad Gateway</html>", "502", ""),
        (500, [], b"[1, 2]", "500", ""),
    ],
    ids=["header-with-suffix", "type-with-namespace", "code-field", "no-type", "html", "json-list"],
)
def test_error_answer_is_raised_with_the_type_boto3_would_name(
    endpoint: Endpoint,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    code: str,
    message: str,
) -> None:
    endpoint.answer = (status, headers, body)
    api = _api(endpoint.url)

    with pytest.raises(ManagementApiError) as raised:
        api.post("c-1", b"{}")
    api.close()

    assert (raised.value.status, raised.value.code, raised.value.message) == (
        status,
        code,
        message,
    )


def test_unreachable_endpoint_raises_an_upstream_error() -> None:
    api = _api(f"http://127.0.0.1:{free_port()}/dev", timeout=2.0)

    with pytest.raises(UpstreamError):
        api.post("c-1", b"{}")


def test_without_any_credentials_posts_go_unsigned_with_one_warning(
    endpoint: Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    api = ManagementApi(endpoint.url, pool_size=2, credentials=CredentialSource({}))

    api.post("c-1", b"{}")
    api.post("c-2", b"{}")
    api.close()

    assert all("Authorization" not in r.headers for r in endpoint.received)
    warnings = [r for r in caplog.records if "unsigned" in r.getMessage()]
    assert len(warnings) == 1


def test_region_comes_from_the_execute_api_host_then_the_environment() -> None:
    assert region_of("https://abc.execute-api.eu-west-3.amazonaws.com/prod", {}) == "eu-west-3"
    assert region_of("http://127.0.0.1:3001/dev", {"AWS_REGION": "ap-south-1"}) == "ap-south-1"
    assert region_of("http://127.0.0.1:3001/dev", {"AWS_DEFAULT_REGION": "sa-east-1"}) == (
        "sa-east-1"
    )
    assert region_of("http://127.0.0.1:3001/dev", {}) == "us-east-1"

"""The emulator's WebSocket API over real sockets: the test application's functions run in the real
runtime; clients are ``websockets``' own synchronous client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from localgw.websocket import WebSocketSettings
from tests.emulator.ws_harness import RunningApp, running_app
from tests.support.polling import wait_for


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("ws")) as running:
        yield running


def events_of(app: RunningApp, connection_id: str, route: str) -> list[dict[str, Any]]:
    return [
        event
        for event in app.events()
        if event["requestContext"]["connectionId"] == connection_id
        and event["requestContext"]["routeKey"] == route
    ]


def ask(ws: ClientConnection, message: str | bytes) -> dict[str, Any]:
    ws.send(message)
    answer = ws.recv(timeout=10)
    assert isinstance(answer, str)
    result: dict[str, Any] = json.loads(answer)
    return result


def connection_id_of(ws: ClientConnection) -> str:
    answer = ask(ws, json.dumps({"action": "echo"}))
    return str(answer["event"]["requestContext"]["connectionId"])


def refusal_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10).close()
    return refused.value.response.status_code


def test_ws_connect_with_allowed_token_runs_connect_with_the_authorizer_context(
    app: RunningApp,
) -> None:
    with connect(app.url("token=good-alice"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)

    (event,) = events_of(app, connection_id, "$connect")
    context = event["requestContext"]
    assert context["eventType"] == "CONNECT"
    assert context["authorizer"] == {
        "principalId": "user-good-alice",
        "userId": "user-good-alice",
        "projects": "p-1",
        "admin": False,
        "level": 3,
    }
    assert event["queryStringParameters"] == {"token": "good-alice"}
    assert event["headers"]["Upgrade"] == "websocket"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "test"
    assert context["domainName"] == f"{context['apiId']}.execute-api.us-east-1.amazonaws.com"


def test_ws_connect_with_denied_token_is_refused_with_403(app: RunningApp) -> None:
    assert refusal_status(app.url("token=bad")) == 403


def test_ws_connect_without_token_is_refused_with_401_before_any_function(app: RunningApp) -> None:
    before = len(app.events())

    assert refusal_status(app.url()) == 401
    assert refusal_status(app.url("token=")) == 401
    assert len(app.events()) == before


def test_ws_connect_when_the_authorizer_crashes_is_refused_with_500(app: RunningApp) -> None:
    assert refusal_status(app.url("token=crash")) == 500


def test_ws_connect_when_connect_answers_non_2xx_is_refused_with_that_status(
    app: RunningApp,
) -> None:
    assert refusal_status(app.url("token=good&refuse=409")) == 409
    assert refusal_status(app.url("token=good&refuse=403")) == 403


def test_ws_message_goes_to_the_route_its_action_names_with_aws_fields(app: RunningApp) -> None:
    with connect(app.url("token=good-bob"), open_timeout=10) as ws:
        answer = ask(ws, json.dumps({"action": "echo", "n": 1}))

    assert answer["routeKey"] == "echo"
    event = answer["event"]
    context = event["requestContext"]
    assert event["body"] == json.dumps({"action": "echo", "n": 1})
    assert event["isBase64Encoded"] is False
    assert context["eventType"] == "MESSAGE"
    assert context["routeKey"] == "echo"
    assert context["messageId"]
    assert context["requestId"]
    assert context["connectedAt"] <= context["requestTimeEpoch"]
    assert context["authorizer"]["userId"] == "user-good-bob"
    assert context["messageDirection"] == "IN"


@pytest.mark.parametrize(
    "message",
    ["not json", json.dumps({"action": "nobody"}), json.dumps({"no": "action"}), "[1, 2]", "{"],
)
def test_ws_message_without_a_matching_route_goes_to_default(app: RunningApp, message: str) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        answer = ask(ws, message)

    assert answer["routeKey"] == "$default"
    assert answer["event"]["body"] == message


def test_ws_binary_frame_goes_to_default_in_base64(app: RunningApp) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        answer = ask(ws, b"\x00\x01binary")

    assert answer["routeKey"] == "$default"
    assert answer["event"]["isBase64Encoded"] is True
    assert answer["event"]["body"] == "AAFiaW5hcnk="


def test_ws_route_without_route_response_sends_nothing_back(app: RunningApp) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        ws.send(json.dumps({"action": "silent"}))
        answer = ask(ws, json.dumps({"action": "echo"}))
        connection_id = answer["event"]["requestContext"]["connectionId"]

    # Messages of one connection run in order, so the silent route ran before the echo answered.
    assert answer["routeKey"] == "echo"
    assert len(events_of(app, connection_id, "silent")) == 1


def test_ws_route_that_crashes_tells_the_client_internal_server_error(app: RunningApp) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        answer = ask(ws, json.dumps({"action": "crash"}))

    assert answer["message"] == "Internal server error"
    assert answer["connectionId"] == connection_id
    assert answer["requestId"]


def test_ws_client_close_runs_disconnect_once_with_its_code(app: RunningApp) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        connection_id = connection_id_of(ws)
        ws.close(code=4001, reason="bye")

    (event,) = wait_for(lambda: events_of(app, connection_id, "$disconnect"), "$disconnect")
    context = event["requestContext"]
    assert context["eventType"] == "DISCONNECT"
    assert context["disconnectStatusCode"] == 4001
    assert context["disconnectReason"] == "bye"
    time.sleep(0.3)
    assert len(events_of(app, connection_id, "$disconnect")) == 1


def test_ws_message_over_128_kb_in_small_frames_closes_with_1009(app: RunningApp) -> None:
    chunk = "x" * 30_000

    def send_then_read(ws: ClientConnection) -> None:
        # The close may reach the client while it is still sending the last fragments.
        ws.send([chunk] * 5)  # 150,000 bytes in five 30,000-byte fragments
        ws.recv(timeout=10)

    with (
        connect(app.url("token=good"), open_timeout=10) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        send_then_read(ws)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_ws_frame_over_32_kb_closes_with_1009(app: RunningApp) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        ws.send("y" * 40_000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_ws_text_message_that_is_not_utf8_closes_with_1007(app: RunningApp) -> None:
    with connect(app.url("token=good"), open_timeout=10) as ws:
        ws.send(b"\xff\xfe not text", text=True)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1007


def test_ws_message_of_100_kb_in_32_kb_frames_is_delivered_whole(app: RunningApp) -> None:
    body = json.dumps({"action": "echo", "pad": "z" * 100_000})
    pieces = [body[i : i + 32_000] for i in range(0, len(body), 32_000)]
    with connect(app.url("token=good"), open_timeout=10) as ws:
        answer = ask(ws, pieces)  # type: ignore[arg-type]

    assert answer["event"]["body"] == body


def test_ws_function_reaches_management_api_through_its_rewritten_endpoint(
    app: RunningApp,
) -> None:
    endpoint = app.stack.model.functions["WsRouteFunction"].environment["WS_MANAGEMENT_ENDPOINT"]
    assert endpoint == f"http://127.0.0.1:{app.server.port}/test"

    with connect(app.url("token=good"), open_timeout=10) as ws:
        ws.send(json.dumps({"action": "push"}))
        assert ws.recv(timeout=10) == "pushed"


def test_ws_idle_connection_is_closed_with_1001_after_the_idle_timeout(tmp_path: Path) -> None:
    settings = WebSocketSettings(port=0, idle_timeout=0.5)
    with (
        running_app(tmp_path, settings=settings) as short,
        connect(short.url("token=good"), open_timeout=10) as ws,
    ):
        connection_id = connection_id_of(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        (event,) = wait_for(lambda: events_of(short, connection_id, "$disconnect"), "$disconnect")

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    assert event["requestContext"]["disconnectStatusCode"] == 1001


def keep_busy(ws: ClientConnection) -> None:
    """Send a message every 0.1 s (bounded) until the server closes the connection."""
    for _ in range(100):
        ws.send(json.dumps({"action": "silent"}))
        time.sleep(0.1)


def test_ws_connection_past_its_maximum_duration_is_closed_even_when_busy(tmp_path: Path) -> None:
    settings = WebSocketSettings(port=0, idle_timeout=30, max_duration=1.0)
    with (
        running_app(tmp_path, settings=settings) as short,
        connect(short.url("token=good"), open_timeout=10) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        keep_busy(ws)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001

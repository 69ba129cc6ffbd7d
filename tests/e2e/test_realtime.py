"""The real-time path end to end through the dev stack: the project's template and real handlers
(authorizer, proxy, ws_connect, ws_broadcast) in the emulator, the demo services, a real Redis and
a real Kafka-protocol broker. A PATCH through the HTTP API becomes a ``ticket.updated`` record,
the event source mapping hands it to ``ws_broadcast``, and ``@connections`` delivers it to the
sockets subscribed to that project, and to no other."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from devstack.stack import DevStack, StackSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class Stack:
    def __init__(self, dev: DevStack) -> None:
        self.dev = dev

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        assert self.dev.emulator is not None
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.dev.emulator.http_url + path, data, method=method)
        request.add_header("content-type", "application/json")
        if token:
            request.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def login(self, username: str) -> str:
        status, body = self.call(
            "POST", "/auth/login", {"username": username, "password": f"{username}-password"}
        )
        assert status == 200, body
        return str(body["accessToken"])

    def socket(self, token: str | None) -> ClientConnection:
        query = f"?token={token}" if token is not None else ""
        return connect(f"{self.dev.ws_url}{query}", open_timeout=30)


@pytest.fixture(scope="module")
def stack(redis_service: Any, kafka_bootstrap: str) -> Iterator[Stack]:
    settings = StackSettings(
        http_port=0,
        ws_port=0,
        board_port=None,
        redis_url=f"redis://{redis_service.address}/6",
        kafka_bootstrap=kafka_bootstrap,
        # A group of its own: starting at LATEST, it sees only this module's changes.
        parameter_overrides={"KafkaConsumerGroupId": f"e2e-realtime-{uuid.uuid4().hex[:8]}"},
        watch_interval=None,
        output=lambda name, line: None,
    )
    dev = DevStack(settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(dev.start(), loop).result(120)
        assert dev.realtime is not None
        (mapping,) = dev.realtime.mappings
        assert mapping.wait_assigned(60), "the broadcast mapping never joined its group"
        yield Stack(dev)
    finally:
        asyncio.run_coroutine_threadsafe(dev.close(), loop).result(120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def subscribe(ws: ClientConnection, project_id: str) -> dict[str, Any]:
    ws.send(json.dumps({"action": "subscribe", "projectId": project_id}))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=30))
    return answer


def updates_until(ws: ClientConnection, ticket_id: str, timeout: float = 30) -> list[Any]:
    """Every message received up to and including the ticket.updated of ``ticket_id``."""
    received: list[Any] = []
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        received.append(message)
        if message.get("type") == "ticket.updated" and message["ticket"]["id"] == ticket_id:
            return received


def test_realtime_connect_with_good_bad_and_no_token(stack: Stack) -> None:
    with stack.socket(stack.login("alice")) as ws:
        assert subscribe(ws, "p-1") == {"type": "subscribed", "projectId": "p-1"}

    with pytest.raises(InvalidStatus) as bad:
        stack.socket("not-a-jwt").close()
    with pytest.raises(InvalidStatus) as missing:
        stack.socket(None).close()

    assert bad.value.response.status_code == 403
    assert missing.value.response.status_code == 401


def test_realtime_subscribe_to_a_foreign_project_is_refused(stack: Stack) -> None:
    with stack.socket(stack.login("alice")) as ws:
        answer = subscribe(ws, "p-2")

    assert answer["type"] == "error"
    assert answer["error"] == "forbidden"
    assert answer["projectId"] == "p-2"


def test_realtime_patch_reaches_subscribers_of_its_project_only(stack: Stack) -> None:
    alice, bob = stack.login("alice"), stack.login("bob")
    with stack.socket(alice) as alice_ws, stack.socket(bob) as bob_ws:
        assert subscribe(alice_ws, "p-1")["type"] == "subscribed"
        assert subscribe(bob_ws, "p-2")["type"] == "subscribed"

        status, ticket = stack.call("PATCH", "/tickets/t-3", {"status": "done"}, token=alice)
        assert status == 200, ticket
        *_, update = updates_until(alice_ws, "t-3")

        status, _ = stack.call("PATCH", "/tickets/t-4", {"status": "in-progress"}, token=bob)
        assert status == 200
        # Bob's socket hears its own project's change; had p-1's reached it, it came first.
        bob_heard = updates_until(bob_ws, "t-4")
        with pytest.raises(TimeoutError):
            updates_until(alice_ws, "t-4", timeout=1.0)

    assert [message["projectId"] for message in bob_heard] == ["p-2"]
    assert update["projectId"] == "p-1"
    assert update["ticket"] == {"id": "t-3", "title": "Plan the first sprint", "status": "done"}
    topic, partition, offset = update["eventId"].rsplit("-", 2)
    assert topic == "ticket.updated"
    assert partition.isdigit()
    assert offset.isdigit()

"""The real-time path end to end through the dev stack: the project's template and real handlers
(authorizer, proxy, ws_connect, ws_broadcast) in the emulator, the demo services, a real Redis and
a real Kafka-protocol broker. A PATCH through the HTTP API becomes a ``ticket.updated`` record,
the event source mapping hands it to ``ws_broadcast``, and ``@connections`` delivers it to the
sockets subscribed to that project, and to no other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from tests.e2e.stack import Stack, running_stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(redis_service: Any, kafka_bootstrap: str) -> Iterator[Stack]:
    with running_stack(f"redis://{redis_service.address}/6", kafka_bootstrap) as running:
        yield running


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

        status, _, ticket = stack.call("PATCH", "/tickets/t-3", {"status": "done"}, token=alice)
        assert status == 200, ticket
        *_, update = updates_until(alice_ws, "t-3")

        status, _, _ = stack.call("PATCH", "/tickets/t-4", {"status": "in-progress"}, token=bob)
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

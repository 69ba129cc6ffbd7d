"""The WebSocket route handler on the event files, against a real Redis."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import ws_connect

from devstack.services import Service
from gateway.redis_client import reset_redis
from tests.conftest import load_event

CONNECTION = "Zm9vYmFyQ29ubjE="


@pytest.fixture(autouse=True)
def redis_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_redis()
    yield
    reset_redis()


def _body(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200
    body: dict[str, Any] = json.loads(response["body"])
    return body


def _message(route: str, body: Any, *, connection_id: str = CONNECTION) -> dict[str, Any]:
    event = load_event("ws-subscribe")
    event["requestContext"]["routeKey"] = route
    event["requestContext"]["connectionId"] = connection_id
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def _connect(redis_client: redis.Redis) -> None:
    assert ws_connect.handler(load_event("ws-connect"), None) == {"statusCode": 200}


def test_connect_records_connection_with_user_projects_and_expiry(
    redis_client: redis.Redis,
) -> None:
    _connect(redis_client)

    record = redis_client.hgetall(f"ws:conn:{{{CONNECTION}}}")
    assert record == {"user": "u-42", "connectedAt": "1796316000000", "projects": "p-1,p-2"}
    assert 7195 <= redis_client.ttl(f"ws:conn:{{{CONNECTION}}}") <= 7200


def test_connect_without_user_in_authorizer_context_is_refused(redis_client: redis.Redis) -> None:
    event = load_event("ws-connect")
    del event["requestContext"]["authorizer"]

    assert ws_connect.handler(event, None) == {"statusCode": 403}
    assert redis_client.keys("ws:*") == []


def test_subscribe_to_allowed_project_joins_room_and_confirms(redis_client: redis.Redis) -> None:
    _connect(redis_client)

    body = _body(ws_connect.handler(load_event("ws-subscribe"), None))

    assert body == {"type": "subscribed", "projectId": "p-1"}
    assert redis_client.smembers("ws:room:{p-1}") == {CONNECTION}
    assert redis_client.hget(f"ws:conn:{{{CONNECTION}}}", "room:p-1") == "1"


def test_subscribe_to_project_outside_token_is_refused_not_dropped(
    redis_client: redis.Redis,
) -> None:
    _connect(redis_client)

    body = _body(ws_connect.handler(load_event("ws-subscribe-forbidden"), None))

    assert body["type"] == "error"
    assert body["error"] == "forbidden"
    assert body["projectId"] == "p-9"
    assert "p-9" in body["message"]
    assert redis_client.exists("ws:room:{p-9}") == 0


def test_subscribe_without_projects_in_context_uses_connection_record(
    redis_client: redis.Redis,
) -> None:
    _connect(redis_client)
    event = load_event("ws-subscribe")
    del event["requestContext"]["authorizer"]["projects"]

    assert _body(ws_connect.handler(event, None))["type"] == "subscribed"


def test_subscribe_without_projects_anywhere_is_refused(redis_client: redis.Redis) -> None:
    event = load_event("ws-subscribe")
    del event["requestContext"]["authorizer"]

    assert _body(ws_connect.handler(event, None))["error"] == "forbidden"
    assert redis_client.exists("ws:room:{p-1}") == 0


def test_subscribe_twice_keeps_one_membership(redis_client: redis.Redis) -> None:
    _connect(redis_client)
    for _ in range(2):
        ws_connect.handler(load_event("ws-subscribe"), None)

    assert redis_client.scard("ws:room:{p-1}") == 1


def test_unsubscribe_leaves_room_and_drops_it_from_record(redis_client: redis.Redis) -> None:
    _connect(redis_client)
    ws_connect.handler(load_event("ws-subscribe"), None)
    ws_connect.handler(_message("subscribe", {"action": "subscribe", "projectId": "p-2"}), None)

    body = _body(ws_connect.handler(load_event("ws-unsubscribe"), None))

    assert body == {"type": "unsubscribed", "projectId": "p-1"}
    assert redis_client.smembers("ws:room:{p-1}") == set()
    assert redis_client.smembers("ws:room:{p-2}") == {CONNECTION}
    assert redis_client.hget(f"ws:conn:{{{CONNECTION}}}", "room:p-1") is None


def test_disconnect_leaves_every_room_and_deletes_record(redis_client: redis.Redis) -> None:
    _connect(redis_client)
    ws_connect.handler(load_event("ws-subscribe"), None)
    ws_connect.handler(_message("subscribe", {"action": "subscribe", "projectId": "p-2"}), None)

    assert ws_connect.handler(load_event("ws-disconnect"), None) == {"statusCode": 200}

    assert redis_client.keys("ws:*") == []


def test_disconnect_twice_or_before_any_connect_answers_200(redis_client: redis.Redis) -> None:
    assert ws_connect.handler(load_event("ws-disconnect"), None) == {"statusCode": 200}
    _connect(redis_client)
    for _ in range(2):
        assert ws_connect.handler(load_event("ws-disconnect"), None) == {"statusCode": 200}

    assert redis_client.keys("ws:*") == []


def test_disconnect_of_one_connection_keeps_others_in_room(redis_client: redis.Redis) -> None:
    _connect(redis_client)
    ws_connect.handler(load_event("ws-subscribe"), None)
    ws_connect.handler(
        _message("subscribe", {"action": "subscribe", "projectId": "p-1"}, connection_id="other="),
        None,
    )

    ws_connect.handler(load_event("ws-disconnect"), None)

    assert redis_client.smembers("ws:room:{p-1}") == {"other="}


def test_default_with_unknown_action_names_it_and_lists_actions() -> None:
    body = _body(ws_connect.handler(load_event("ws-default-unknown-action"), None))

    assert body["error"] == "unknown_action"
    assert "'chat'" in body["message"]
    assert body["actions"] == ["subscribe", "unsubscribe"]


def test_default_with_body_not_json_says_so_and_lists_actions() -> None:
    body = _body(ws_connect.handler(load_event("ws-default-not-json"), None))

    assert body["error"] == "invalid_json"
    assert body["actions"] == ["subscribe", "unsubscribe"]


def test_default_without_action_asks_for_one() -> None:
    body = _body(ws_connect.handler(_message("$default", {"projectId": "p-1"}), None))

    assert body["error"] == "unknown_action"
    assert "action is required" in body["message"]


def test_default_with_routable_action_serves_that_route(redis_client: redis.Redis) -> None:
    _connect(redis_client)

    body = _body(
        ws_connect.handler(_message("$default", {"action": "subscribe", "projectId": "p-2"}), None)
    )

    assert body == {"type": "subscribed", "projectId": "p-2"}


@pytest.mark.parametrize(
    ("payload", "code", "text"),
    [
        ({"action": "subscribe"}, "invalid_message", "projectId is required"),
        ({"action": "subscribe", "projectId": 42}, "invalid_message", "must be a string"),
        ({"action": "subscribe", "projectId": ["p-1"]}, "invalid_message", "must be a string"),
        ("{not json", "invalid_json", "not valid JSON"),
        ("[]", "invalid_message", "JSON object"),
    ],
)
@pytest.mark.parametrize("route", ["subscribe", "unsubscribe"])
def test_room_routes_answer_bad_input_with_clear_error(
    route: str, payload: Any, code: str, text: str, redis_client: redis.Redis
) -> None:
    _connect(redis_client)

    body = _body(ws_connect.handler(_message(route, payload), None))

    assert body["type"] == "error"
    assert body["error"] == code
    assert text in body["message"]
    assert body["action"] == route
    assert redis_client.keys("ws:room:*") == []


def test_oversized_body_is_refused_with_limit(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("WS_MAX_BODY_BYTES", "64")
    payload = {"action": "subscribe", "projectId": "p-1", "padding": "x" * 100}

    for route in ("subscribe", "$default"):
        body = _body(ws_connect.handler(_message(route, payload), None))
        assert body["error"] == "payload_too_large"
        assert "64 bytes" in body["message"]
    assert redis_client.keys("ws:room:*") == []


def test_base64_binary_frame_is_decoded(redis_client: redis.Redis) -> None:
    _connect(redis_client)
    event = load_event("ws-subscribe")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    assert _body(ws_connect.handler(event, None))["type"] == "subscribed"


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["requestContext"].update(routeKey="chat"),
        lambda e: e["requestContext"].pop("connectionId"),
        lambda e: e.pop("requestContext"),
    ],
)
def test_event_the_function_does_not_serve_gets_400(
    change: Callable[[dict[str, Any]], Any],
) -> None:
    event = load_event("ws-subscribe")
    change(event)

    response = ws_connect.handler(event, None)

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == "bad_request"


def test_redis_outage_refuses_connect_answers_messages_and_acknowledges_disconnect(
    redis_factory: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = redis_factory()
    monkeypatch.setenv("REDIS_URL", f"redis://{service.address}/0")
    reset_redis()
    service.kill()

    assert ws_connect.handler(load_event("ws-connect"), None) == {"statusCode": 500}
    body = _body(ws_connect.handler(load_event("ws-subscribe"), None))
    assert body["error"] == "unavailable"
    assert ws_connect.handler(load_event("ws-disconnect"), None) == {"statusCode": 200}

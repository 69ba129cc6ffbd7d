"""The whole real-time path on this machine: the project's own template in the local emulator, a
real WebSocket client, a real Redis and a real Kafka-protocol broker.

A browser-like client connects with a token (the authorizer runs), subscribes to a project, and a
``ticket.updated`` record produced to Kafka comes back to it through the emulator's event source
mapping, the broadcast function and the ``@connections`` endpoint.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from devstack.services import Service
from localgw.runtime import Runtime
from localgw.template import load_template
from localgw.websocket import WebSocketSettings
from localgw.websocket_stack import RealtimeSettings, RealtimeStack
from tests.emulator.ws_harness import LoopThread
from tests.support.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
SECRET = "realtime-e2e-secret-of-at-least-32-bytes"
ISSUER = "https://auth.syncroboard.test"
AUDIENCE = "syncroboard-gateway"
TOPIC = "ticket.updated"


@dataclass
class Gateway:
    url: str
    stack: RealtimeStack
    redis: redis.Redis


def _token(*projects: str, sub: str = "u-e2e") -> str:
    now = int(time.time())
    claims = {
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "roles": ["member"],
        "projects": list(projects),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def gateway(redis_service: Service, kafka_bootstrap: str) -> Iterator[Gateway]:
    """The template's WebSocket API and Kafka mapping, started once for this module."""
    redis_url = f"redis://{redis_service.address}/0"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()

    model = load_template(
        ROOT / "template.yaml",
        overrides={
            "KafkaBootstrapServers": kafka_bootstrap,
            "KafkaConsumerGroupId": f"realtime-e2e-{uuid.uuid4().hex[:8]}",
            "KafkaStartingPosition": "LATEST",
        },
        environ={},
    )
    settings = RealtimeSettings(
        websocket=WebSocketSettings(port=0),
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_options=(("session_timeout_ms", 6000), ("heartbeat_interval_ms", 1000)),
    )
    stack = RealtimeStack(model, settings)
    backing = {"REDIS_URL": redis_url, "REDIS_CLUSTER": "false"}
    runtime = Runtime(
        model.functions,
        env_overrides={
            "AuthorizerFunction": {
                "JWT_SETTINGS_SECRET_ARN": "",
                "JWT_ISSUER": ISSUER,
                "JWT_AUDIENCE": AUDIENCE,
                "JWT_ALGORITHMS": "HS256",
                "JWT_SECRET": SECRET,
            },
            "WsConnectFunction": backing,
            "WsBroadcastFunction": backing,
        },
        concurrency=2,
        prewarm=0,
        watch_interval=None,
    )
    loop = LoopThread()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        loop.run(runtime.start())
        loop.run(stack.start(runtime))
        yield Gateway(url=stack.servers[0].url, stack=stack, redis=client)
    finally:
        client.close()
        loop.run(stack.close())
        loop.run(runtime.close())
        loop.stop()


def _send(client: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    client.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(client.recv(timeout=20))
    return answer


def _produce(bootstrap: str, project_id: str, status: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    value = {
        "type": "ticket.updated",
        "projectId": project_id,
        "ticket": {"id": "t-e2e", "title": "End to end", "status": status},
        "at": "2026-12-03T17:00:00Z",
    }
    producer.send(TOPIC, key=project_id.encode(), value=json.dumps(value).encode())
    producer.flush()
    producer.close()


@pytest.mark.kafka
@pytest.mark.slow
def test_ticket_update_on_kafka_reaches_client_and_prunes_stale_member(
    gateway: Gateway, kafka_bootstrap: str
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    room = f"ws:room:{{{project}}}"
    with connect(f"{gateway.url}/?token={_token(project)}", open_timeout=20) as client:
        assert _send(client, {"action": "subscribe", "projectId": project}) == {
            "type": "subscribed",
            "projectId": project,
        }
        refused = _send(client, {"action": "subscribe", "projectId": "p-not-mine"})
        assert refused["error"] == "forbidden"
        assert _send(client, {"action": "hello"})["actions"] == ["subscribe", "unsubscribe"]
        # A member whose $disconnect never came: the emulator answers 410 for it, as AWS does.
        gateway.redis.sadd(room, "stale-connection=")
        assert all(runner.wait_assigned(30) for runner in gateway.stack.mappings)

        _produce(kafka_bootstrap, project, "done")

        update = json.loads(client.recv(timeout=30))
        wait_for(
            lambda: gateway.redis.smembers(room) == {_connection_id(gateway, room)},
            "the subscribed connection alone in the room",
        )

    assert update["type"] == "ticket.updated"
    assert update["projectId"] == project
    assert update["ticket"]["status"] == "done"
    assert update["eventId"].startswith(f"{TOPIC}-")


def test_connection_without_token_is_refused_by_the_emulator(gateway: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(gateway.url, open_timeout=20):
        pass

    assert refused.value.response.status_code in {401, 403}


def test_client_that_closes_leaves_its_rooms_through_disconnect(gateway: Gateway) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    room = f"ws:room:{{{project}}}"
    with connect(f"{gateway.url}/?token={_token(project)}", open_timeout=20) as client:
        _send(client, {"action": "subscribe", "projectId": project})
        connection_id = _connection_id(gateway, room)
        assert gateway.redis.exists(f"ws:conn:{{{connection_id}}}") == 1

    wait_for(lambda: gateway.redis.scard(room) == 0, "the stale member pruned from the room")
    assert gateway.redis.exists(f"ws:conn:{{{connection_id}}}") == 0


def _connection_id(gateway: Gateway, room: str) -> str:
    members = {m for m in gateway.redis.smembers(room) if m != "stale-connection="}
    assert len(members) == 1
    return members.pop()

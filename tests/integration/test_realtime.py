"""The real-time path end to end over real sockets: the route handler and the broadcast handler
against a real Redis, with moto's Management API server, and with a local stub of API Gateway's
``@connections`` endpoint for the answers moto never gives (410 Gone, 429 throttling, 500)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

import pytest
import redis
import ws_broadcast
import ws_connect
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from moto.server import ThreadedMotoServer

from devstack.services import Service, free_port
from gateway.redis_client import reset_redis
from gateway.rooms import StoreUnavailable
from localgw.kafka_event import build_kafka_event
from tests.conftest import load_event
from tests.support.loopback import LoopbackServer
from tests.support.moto_connections import clear_posted, posted

ERROR_TYPES = {410: "GoneException", 429: "LimitExceededException"}


class ManagementStub:
    """A threaded HTTP server answering ``POST /{stage}/@connections/{id}`` as API Gateway does.

    ``gone`` ids answer 410 ``GoneException``; ``throttle[id]`` answers 429 that many times first;
    ``fail`` ids answer 500. Every delivered body is kept in ``received[id]``.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.gone: set[str] = set()
        self.fail: set[str] = set()
        self.throttle: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.received: defaultdict[str, list[bytes]] = defaultdict(list)
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._http = LoopbackServer(_handler_for(self))

    @property
    def url(self) -> str:
        return f"{self._http.origin}/dev"

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def answer(self, connection_id: str, body: bytes) -> int:
        with self._lock:
            self.attempts[connection_id] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            with self._lock:
                if connection_id in self.gone:
                    return 410
                if connection_id in self.fail:
                    return 500
                if self.throttle[connection_id] > 0:
                    self.throttle[connection_id] -= 1
                    return 429
                self.received[connection_id].append(body)
                return 200
        finally:
            with self._lock:
                self.in_flight -= 1

    def messages(self, connection_id: str) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.received[connection_id]]


def _handler_for(stub: ManagementStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            connection_id = unquote(self.path.rsplit("/@connections/", 1)[-1])
            status = stub.answer(connection_id, body)
            payload = b"" if status == 200 else json.dumps({"message": None}).encode()
            self.send_response(status)
            if status in ERROR_TYPES:
                self.send_header("x-amzn-ErrorType", ERROR_TYPES[status])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def stub() -> Iterator[ManagementStub]:
    server = ManagementStub()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gateway_env(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, int], None]]:
    """Point both handlers at the test Redis and a Management endpoint of the test's choosing."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_redis()

    def point(endpoint: str, concurrency: int = 8) -> None:
        monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", endpoint)
        monkeypatch.setenv("BROADCAST_CONCURRENCY", str(concurrency))
        ws_broadcast.reset_broadcaster()

    yield point
    ws_broadcast.reset_broadcaster()
    reset_redis()


def _route(route: str, connection_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    name = {"$connect": "ws-connect", "$disconnect": "ws-disconnect"}.get(route, "ws-subscribe")
    event = load_event(name)
    event["requestContext"]["routeKey"] = route
    event["requestContext"]["connectionId"] = connection_id
    if body is not None:
        event["body"] = json.dumps(body)
    response: dict[str, Any] = ws_connect.handler(event, None)
    return response


def _connect_and_join(connection_id: str, *projects: str) -> None:
    assert _route("$connect", connection_id)["statusCode"] == 200
    for project in projects:
        answer = _route("subscribe", connection_id, {"action": "subscribe", "projectId": project})
        assert json.loads(answer["body"])["type"] == "subscribed"


def _ticket_event(project_id: str, offset: int = 41) -> dict[str, Any]:
    event = load_event("kafka-self-managed")
    record = event["records"]["ticket.updated-0"][0]
    record["offset"] = offset
    value = json.dumps(
        {
            "type": "ticket.updated",
            "projectId": project_id,
            "ticket": {"id": "t-1", "title": "T", "status": "done"},
            "at": "2026-12-03T16:40:30Z",
        }
    )
    record["value"] = base64.b64encode(value.encode()).decode()
    return event


def test_gone_connection_is_pruned_from_every_room_and_its_record_deleted(
    stub: ManagementStub, gateway_env: Callable[[str, int], None], redis_client: redis.Redis
) -> None:
    gateway_env(stub.url, 8)
    _connect_and_join("c-gone", "p-1", "p-2")
    _connect_and_join("c-live", "p-1")
    stub.gone.add("c-gone")

    counts = ws_broadcast.handler(_ticket_event("p-1"), None)

    assert counts == {"records": 1, "delivered": 1, "pruned": 1, "skipped": 0, "failed": 0}
    assert redis_client.smembers("ws:room:{p-1}") == {"c-live"}
    assert redis_client.smembers("ws:room:{p-2}") == set()
    assert redis_client.exists("ws:conn:{c-gone}") == 0
    assert [m["eventId"] for m in stub.messages("c-live")] == ["ticket.updated-0-41"]

    again = ws_broadcast.handler(_ticket_event("p-1", offset=42), None)

    assert again["pruned"] == 0
    assert stub.attempts["c-gone"] == 1


def test_throttled_send_is_retried_with_backoff_until_delivered(
    stub: ManagementStub, gateway_env: Callable[[str, int], None]
) -> None:
    gateway_env(stub.url, 8)
    _connect_and_join("c-1", "p-1")
    _connect_and_join("c-2", "p-1")
    stub.throttle["c-1"] = 2

    counts = ws_broadcast.handler(_ticket_event("p-1"), None)

    assert counts["delivered"] == 2
    assert counts["failed"] == 0
    assert stub.attempts["c-1"] == 3
    assert len(stub.messages("c-1")) == 1


def test_send_throttled_past_its_attempts_fails_alone_and_stays_in_room(
    stub: ManagementStub, gateway_env: Callable[[str, int], None], redis_client: redis.Redis
) -> None:
    gateway_env(stub.url, 8)
    _connect_and_join("c-1", "p-1")
    _connect_and_join("c-2", "p-1")
    stub.throttle["c-1"] = 100

    counts = ws_broadcast.handler(_ticket_event("p-1"), None)

    assert counts == {"records": 1, "delivered": 1, "pruned": 0, "skipped": 0, "failed": 1}
    assert stub.attempts["c-1"] == 4
    assert redis_client.smembers("ws:room:{p-1}") == {"c-1", "c-2"}


def test_server_error_for_one_recipient_is_logged_and_the_rest_delivered(
    stub: ManagementStub,
    gateway_env: Callable[[str, int], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway_env(stub.url, 8)
    for connection_id in ("c-1", "c-2", "c-3"):
        _connect_and_join(connection_id, "p-1")
    stub.fail.add("c-2")

    counts = ws_broadcast.handler(_ticket_event("p-1"), None)

    assert (counts["delivered"], counts["failed"], counts["pruned"]) == (2, 1, 0)
    assert stub.attempts["c-2"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("c-2" in text and "500" in text for text in warnings)


def test_unreachable_endpoint_counts_every_send_failed_and_returns(
    gateway_env: Callable[[str, int], None], caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on the port: each send fails at connect, none stops the others.
    gateway_env(f"http://127.0.0.1:{free_port()}/dev", 4)
    for connection_id in ("c-1", "c-2", "c-3"):
        _connect_and_join(connection_id, "p-1")

    counts = ws_broadcast.handler(_ticket_event("p-1"), None)

    assert counts == {"records": 1, "delivered": 0, "pruned": 0, "skipped": 0, "failed": 3}
    failures = [
        r for r in caplog.records if "failed" in r.getMessage() and r.levelname == "WARNING"
    ]
    assert len(failures) == 3


def test_fanout_runs_concurrently_within_the_configured_bound(
    gateway_env: Callable[[str, int], None],
) -> None:
    slow = ManagementStub(delay=0.05)
    slow.start()
    try:
        gateway_env(slow.url, 4)
        for index in range(16):
            _connect_and_join(f"c-{index}", "p-1")

        counts = ws_broadcast.handler(_ticket_event("p-1"), None)
    finally:
        slow.stop()

    assert counts["delivered"] == 16
    assert 2 <= slow.max_in_flight <= 4


def test_redis_outage_fails_the_batch_so_it_is_delivered_again(
    stub: ManagementStub,
    gateway_env: Callable[[str, int], None],
    redis_factory: Callable[..., Service],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway_env(stub.url, 8)
    service = redis_factory()
    monkeypatch.setenv("REDIS_URL", f"redis://{service.address}/0")
    reset_redis()
    service.kill()

    with pytest.raises(StoreUnavailable):
        ws_broadcast.handler(_ticket_event("p-1"), None)


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    clear_posted()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_clients_subscribed_through_routes_receive_broadcasts_from_moto(
    moto_endpoint: str, gateway_env: Callable[[str, int], None]
) -> None:
    gateway_env(moto_endpoint, 4)
    _connect_and_join("m-1", "p-1", "p-2")
    _connect_and_join("m-2", "p-2")
    _connect_and_join("m-3", "p-1")
    _route("unsubscribe", "m-3", {"action": "unsubscribe", "projectId": "p-1"})

    counts = ws_broadcast.handler(load_event("kafka-msk-partitions"), None)

    assert counts == {"records": 4, "delivered": 6, "pruned": 0, "skipped": 0, "failed": 0}
    assert [m["eventId"] for m in posted("m-1")] == [
        "ticket.updated-0-100",
        "ticket.updated-0-101",
        "ticket.updated-1-7",
        "ticket.updated-1-8",
    ]
    assert [m["eventId"] for m in posted("m-2")] == [
        "ticket.updated-1-7",
        "ticket.updated-1-8",
    ]
    assert posted("m-3") == []

    _route("$disconnect", "m-1")
    after = ws_broadcast.handler(load_event("kafka-self-managed"), None)

    assert after["delivered"] == 0


@pytest.mark.kafka
def test_records_consumed_from_a_real_broker_reach_every_subscribed_client(
    kafka_bootstrap: str, stub: ManagementStub, gateway_env: Callable[[str, int], None]
) -> None:
    # GIVEN clients in two project rooms, and ticket events (and one poison value) on a topic of
    # two partitions of a real Kafka-protocol broker
    gateway_env(stub.url, 4)
    _connect_and_join("k-1", "p-1")
    _connect_and_join("k-2", "p-1", "p-2")
    topic = f"ticket.updated.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    sent = [("p-1", "todo"), ("p-2", "todo"), ("p-1", "review"), ("p-2", "done"), ("p-1", "done")]
    for project, status in sent:
        value = {
            "type": "ticket.updated",
            "projectId": project,
            "ticket": {"id": f"t-{project}", "title": "T", "status": status},
            "at": "2026-12-03T16:40:30Z",
        }
        producer.send(
            topic,
            key=project.encode(),
            value=json.dumps(value).encode(),
            headers=[("content-type", b"application/json")],
        )
    producer.send(topic, key=b"p-1", value=b"not json at all")
    producer.flush()
    producer.close()

    # WHEN a consumer group reads them, as an event source mapping would, and the handler
    # receives the batch Lambda would build
    records = _consume(kafka_bootstrap, topic, expected=len(sent) + 1)
    event = build_kafka_event(records, bootstrap_servers=kafka_bootstrap)
    counts = ws_broadcast.handler(event, None)

    # THEN every valid record reached every connection of its room, in partition order
    assert counts == {"records": 6, "delivered": 8, "pruned": 0, "skipped": 1, "failed": 0}
    by_project = {
        "p-1": [r for r in records if r.key == b"p-1" and r.value != b"not json at all"],
        "p-2": [r for r in records if r.key == b"p-2"],
    }
    expected_ids = {
        p: [f"{topic}-{r.partition}-{r.offset}" for r in rs] for p, rs in by_project.items()
    }
    assert [m["eventId"] for m in stub.messages("k-1")] == expected_ids["p-1"]
    k2 = [m["eventId"] for m in stub.messages("k-2")]
    assert sorted(k2) == sorted(expected_ids["p-1"] + expected_ids["p-2"])
    assert [m["ticket"]["status"] for m in stub.messages("k-1")] == ["todo", "review", "done"]


def _consume(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Read ``expected`` records as a fresh consumer group; bounded by a 30 s deadline."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ws-broadcast-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    records: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        consumer.commit()
    finally:
        consumer.close()
    assert len(records) == expected, f"consumed {len(records)} of {expected} records"
    return sorted(records, key=lambda r: (r.partition, r.offset))

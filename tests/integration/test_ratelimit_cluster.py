"""The limiter and the login guard on a real three-master Redis Cluster started on loopback.

A cluster refuses a script whose keys hash to different slots (CROSSSLOT); every decision below
being undegraded is the proof that each request touched one slot. The client comes from
``gateway.redis_client.get_redis(cluster=True)``, as on ElastiCache.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from gateway.ratelimit import Decision, LoginGuard, Policy, RateLimiter, limit_key
from gateway.redis_client import close_client, get_redis, reset_redis
from tests.support.redis_cluster import RedisClusterNodes, start_redis_cluster

THREE_PER_DAY = Policy("tickets", 3, 86400)


@pytest.fixture
def client(redis_cluster: RedisClusterNodes) -> Iterator[RedisCluster]:
    reset_redis()
    created = get_redis(redis_cluster.url, cluster=True)
    assert isinstance(created, RedisCluster)
    created.flushall()
    yield created
    reset_redis()


def keys_by_node(cluster: RedisClusterNodes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for node in cluster.nodes:
        plain = redis.Redis(host=node.host, port=node.port)
        found[node.address] = sorted(key.decode() for key in plain.keys("*"))
        plain.close()
    return found


def test_cluster_has_three_masters_sharing_every_slot(client: RedisCluster):
    masters = client.get_primaries()
    info = client.cluster_info(target_nodes=RedisCluster.RANDOM)

    assert len(masters) == 3
    assert int(info["cluster_slots_assigned"]) == 16384


def test_route_group_limits_on_the_cluster_are_exact_per_identity(
    client: RedisCluster, redis_cluster: RedisClusterNodes
):
    limiter = RateLimiter(client)
    identities = [f"user:u-{i}" for i in range(30)]

    outcomes = {
        identity: [limiter.hit(limit_key("tickets", identity), THREE_PER_DAY) for _ in range(4)]
        for identity in identities
    }

    for decisions in outcomes.values():
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert not any(d.degraded for d in decisions)
    # The buckets spread over the shards: every master holds some.
    per_node = keys_by_node(redis_cluster)
    assert all(per_node.values())
    assert sum(len(keys) for keys in per_node.values()) == 30


def test_login_protection_on_the_cluster_stops_guesses_and_lets_the_owner_in(
    client: RedisCluster, redis_cluster: RedisClusterNodes
):
    guard = LoginGuard(
        RateLimiter(client),
        per_ip=Policy("login-ip", 50, 86400),
        per_ip_failures=Policy("login-ip-failures", 20, 86400),
        per_user_failures=Policy("login-user-failures", 3, 86400),
        per_user_global_failures=Policy("login-user-global-failures", 6, 86400),
    )

    def attempt(ip: str, status: int) -> Decision:
        decision = guard.check("alice", ip)
        if decision.allowed:
            guard.record("alice", ip, status, check=decision)
        return decision

    owner_login = attempt("203.0.113.10", 200)
    guesses = [attempt("198.51.100.66", 401) for _ in range(4)]
    botnet = [attempt(f"192.0.2.{i}", 401) for i in range(1, 11)]
    owner_again = guard.check("alice", "203.0.113.10")
    newcomer = guard.check("alice", "192.0.2.250")

    assert owner_login.allowed
    assert [d.allowed for d in guesses] == [True, True, True, False]
    assert [d.allowed for d in botnet].count(True) == 3  # 6 global, 3 spent by the guesser
    assert owner_again.allowed
    assert (newcomer.allowed, newcomer.policy.name) == (False, "login-user-global-failures")
    assert not any(d.degraded for d in [owner_login, *guesses, *botnet, owner_again, newcomer])
    holders = [address for address, keys in keys_by_node(redis_cluster).items() if keys]
    assert len(holders) == 1  # every login key on one shard: one hash tag


def test_limiter_on_the_cluster_loads_its_script_again_after_a_flush(
    client: RedisCluster, redis_cluster: RedisClusterNodes
):
    limiter = RateLimiter(client)
    limiter.hit(limit_key("tickets", "user:u-1"), THREE_PER_DAY)
    for node in redis_cluster.nodes:
        plain = redis.Redis(host=node.host, port=node.port)
        plain.script_flush()
        plain.close()

    again = [limiter.hit(limit_key("tickets", f"user:u-{i}"), THREE_PER_DAY) for i in range(6)]

    assert not any(d.degraded for d in again)
    assert [d.remaining for d in again] == [2, 1, 2, 2, 2, 2]


def test_fifty_concurrent_cluster_clients_get_exactly_one_hundred_admitted(
    redis_cluster: RedisClusterNodes, client: RedisCluster
):
    policy = Policy("tickets", 100, 86400)
    key = limit_key("tickets", "user:shared")
    barrier = threading.Barrier(50)
    admitted: Counter[bool] = Counter()
    lock = threading.Lock()

    def client_thread() -> None:
        own = RedisCluster.from_url(redis_cluster.url, socket_timeout=10)
        try:
            limiter = RateLimiter(own)
            barrier.wait(timeout=60)
            outcomes = [limiter.hit(key, policy) for _ in range(4)]
            with lock:
                admitted.update(d.allowed for d in outcomes if not d.degraded)
        finally:
            close_client(own)

    threads = [threading.Thread(target=client_thread) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert admitted == Counter({True: 100, False: 100})


@pytest.mark.timeout(60)
def test_master_killed_mid_test_decisions_still_arrive_by_the_failure_policy():
    with start_redis_cluster(masters=3) as own:
        reset_redis()
        client = get_redis(own.url, cluster=True)
        assert isinstance(client, RedisCluster)
        limiter = RateLimiter(client, failure_policy="closed", backoff_seconds=0)
        keys = [limit_key("tickets", f"user:u-{i}") for i in range(12)]
        before = [limiter.hit(key, THREE_PER_DAY) for key in keys]
        victim = own.nodes[0]
        on_victim = {
            key
            for key in keys
            if client.get_node_from_key("rl:" + key).port == victim.port  # type: ignore[union-attr]
        }

        victim.kill()
        after = {key: limiter.hit(key, THREE_PER_DAY) for key in keys}
        reset_redis()

    assert not any(d.degraded for d in before)
    assert on_victim
    assert all(after[key].degraded and not after[key].allowed for key in on_victim)

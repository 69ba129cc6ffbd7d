"""Exactness under concurrency: many clients, each on its own connection, one quota.

The policies here have a period of a day, so that no unit of quota comes back while the test
runs: "exactly the limit admitted" then holds however slowly this machine runs the threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

from gateway.ratelimit import Decision, LoginGuard, Policy, RateLimiter, limit_key

CLIENTS = 50


def run_concurrently(
    redis_url: str, work: Callable[[RateLimiter], list[Decision]]
) -> tuple[list[Decision], set[int]]:
    """Run ``work`` in ``CLIENTS`` threads at once, each with its own client and connection."""
    barrier = threading.Barrier(CLIENTS)
    lock = threading.Lock()
    decisions: list[Decision] = []
    connections: set[int] = set()
    errors: list[BaseException] = []

    def client_thread() -> None:
        client = redis.Redis.from_url(redis_url, socket_timeout=10)
        try:
            connection_id = client.client_id()  # connect first: the barrier releases a burst
            barrier.wait(timeout=60)
            mine = work(RateLimiter(client))
            with lock:
                decisions.extend(mine)
                connections.add(connection_id)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=client_thread) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return decisions, connections


def test_fifty_concurrent_clients_get_exactly_one_hundred_admitted(redis_url: str):
    policy = Policy("tickets", 100, 86400)
    key = limit_key("tickets", "user:shared")

    decisions, connections = run_concurrently(
        redis_url, lambda limiter: [limiter.hit(key, policy) for _ in range(4)]
    )

    admitted = [d for d in decisions if d.allowed]
    assert len(connections) == CLIENTS
    assert len(decisions) == 200
    assert len(admitted) == 100
    assert not any(d.degraded for d in decisions)
    # Each admitted request saw its own quota state: the script ran them one at a time.
    assert sorted(d.remaining for d in admitted) == list(range(100))


def test_fifty_concurrent_guesses_on_one_account_reach_auth_only_up_to_the_pair_limit(
    redis_url: str,
):
    def guesses(limiter: RateLimiter) -> list[Decision]:
        guard = LoginGuard(
            limiter,
            per_ip=Policy("login-ip", 1000, 86400),
            per_ip_failures=Policy("login-ip-failures", 1000, 86400),
            per_user_failures=Policy("login-user-failures", 5, 86400),
        )
        return [guard.check("alice", "198.51.100.66") for _ in range(2)]

    decisions, _ = run_concurrently(redis_url, guesses)

    assert len(decisions) == 100
    assert [d.allowed for d in decisions].count(True) == 5

"""(b) A rate-limit decision against a redis-py PING on the same connection, in the same run.

Both go to one ``redis-server`` of this run's own on loopback, over one client with one
connection (built as ``gateway.redis_client`` builds it), so the difference is the limiter's own
work: building the arguments, one EVALSHA with the GCRA script, reading the reply. PING is the
cheapest round trip Redis has; the goal is a decision at most 2x a PING at the median, which holds
only if a decision is one round trip.

- baseline: ``client.ping()``;
- limiter: ``RateLimiter.hit`` with the tickets policy (100/60) over 1000 users, each admitted
  request writing its bucket; and, for reference, ``LoginGuard.check`` (four buckets, one call).

Rounds alternate the two, so drift on this noisy machine touches both alike. The connection
counts the requests it writes, which shows how many round trips a decision took.

Run: ``.venv/bin/python -m bench.limiter``
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import redis

from devstack.services import start_redis
from gateway.ratelimit import LoginGuard, Policy, RateLimiter, client_identity, limit_key

ROUNDS = 5
PER_ROUND = 2000
WARMUP = 500
USERS = 1000


def _timed(call: Callable[[int], object], count: int, start: int) -> list[float]:
    samples = []
    for i in range(start, start + count):
        began = time.perf_counter_ns()
        call(i)
        samples.append((time.perf_counter_ns() - began) / 1000)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _CountingConnection(redis.Connection):
    """A connection that counts the requests it sends: one per round trip."""

    sent = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        type(self).sent += 1
        super().send_packed_command(command, check_health)


def _round_trips(call: Callable[[int], object], count: int) -> float:
    before = _CountingConnection.sent
    for i in range(count):
        call(i)
    return (_CountingConnection.sent - before) / count


def main() -> None:
    with start_redis() as service:
        client = redis.Redis.from_url(
            f"redis://{service.address}/0",
            socket_timeout=1,
            max_connections=1,
            connection_class=_CountingConnection,
        )
        limiter = RateLimiter(client)
        policy = Policy("tickets", 100, 60)
        guard = LoginGuard(
            limiter,
            per_ip=Policy("login-ip", 1_000_000, 60),
            per_ip_failures=Policy("login-ip-failures", 1_000_000, 60),
            per_user_failures=Policy("login-user-failures", 1_000_000, 60),
            per_user_global_failures=Policy("login-user-global-failures", 1_000_000, 60),
        )
        keys = [limit_key("tickets", client_identity(f"u-{i}", "")) for i in range(USERS)]

        def ping(_: int) -> object:
            return client.ping()

        def decide(i: int) -> object:
            return limiter.hit(keys[i % USERS], policy)

        def login(i: int) -> object:
            return guard.check(f"user{i % USERS}", f"198.51.100.{i % 250}")

        for call in (ping, decide, login):
            _timed(call, WARMUP, 0)

        pings: list[float] = []
        decisions: list[float] = []
        logins: list[float] = []
        for r in range(ROUNDS):
            start = r * PER_ROUND
            pings += _timed(ping, PER_ROUND, start)
            decisions += _timed(decide, PER_ROUND, start)
            logins += _timed(login, PER_ROUND, start)
        trips = {
            name: _round_trips(call, 1000) for name, call in (("hit", decide), ("login", login))
        }
        client.close()

    print(f"samples: {len(pings)} per kind, {ROUNDS} alternating rounds, one connection")
    print(f"{'':22}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}")
    for name, samples in (
        ("redis-py PING", pings),
        ("limiter.hit", decisions),
        ("login_guard.check", logins),
    ):
        print(
            f"{name:22}{_pct(samples, 0.50):10.1f}{_pct(samples, 0.99):10.1f}"
            f"{statistics.fmean(samples):10.1f}"
        )
    p50_ratio = _pct(decisions, 0.5) / _pct(pings, 0.5)
    p99_ratio = _pct(decisions, 0.99) / _pct(pings, 0.99)
    print(f"ratio limiter.hit / PING: p50 {p50_ratio:.2f}x (goal <= 2x), p99 {p99_ratio:.2f}x")
    print(f"ratio login_guard.check / PING: p50 {_pct(logins, 0.5) / _pct(pings, 0.5):.2f}x")
    print(
        f"round trips per decision: limiter.hit {trips['hit']:.2f}, "
        f"login_guard.check {trips['login']:.2f} (goal: 1)"
    )


if __name__ == "__main__":
    main()

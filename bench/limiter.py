"""(b) A rate-limit decision against a redis-py PING on the same connection, in the same run.

Both go to one ``redis-server`` of this run's own on loopback, over one redis-py client holding
one connection, so the difference is the limiter's own work: building the arguments, one EVALSHA
with the GCRA script, reading the reply. PING is the cheapest round trip Redis has; the goal is a
decision at most 2x a PING at the median, which holds only if a decision is one round trip.

- baseline: ``client.ping()``;
- limiter: ``RateLimiter.hit`` with the tickets policy (100/60) over 1000 users, each admitted
  request writing its bucket; and, for reference, ``LoginGuard.check`` (four buckets, one call).

The kinds take turns, so drift on this noisy machine touches all alike: in blocks of 500 calls
(each measured warm, as in a loop of its own) and then call by call (each measured just after
the others, with colder caches). Both are printed; neither is picked after the fact. The connection
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

SAMPLES = 10_000
BLOCK = 500
WARMUP = 500
USERS = 1000


def _timed(calls: list[Callable[[int], object]], count: int, block: int) -> list[list[float]]:
    """Time each call ``count`` times, taking turns every ``block`` calls; microseconds each."""
    samples: list[list[float]] = [[] for _ in calls]
    clock = time.perf_counter_ns
    for start in range(0, count, block):
        for call, kept in zip(calls, samples, strict=True):
            for i in range(start, start + block):
                began = clock()
                call(i)
                kept.append((clock() - began) / 1000)
    return samples


def _report(title: str, pings: list[float], decisions: list[float], logins: list[float]) -> None:
    print(f"\n{title}: {len(pings)} samples per kind, one connection")
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

        calls = [ping, decide, login]
        _timed(calls, WARMUP, WARMUP)
        steady = _timed(calls, SAMPLES, BLOCK)
        mixed = _timed(calls, SAMPLES, 1)
        trips = {
            name: _round_trips(call, 1000) for name, call in (("hit", decide), ("login", login))
        }
        client.close()

    _report(f"steady: blocks of {BLOCK} calls taking turns", *steady)
    _report("mixed: calls taking turns one by one (colder caches, as between other work)", *mixed)
    print(
        f"\nround trips per decision: limiter.hit {trips['hit']:.2f}, "
        f"login_guard.check {trips['login']:.2f} (goal: 1)"
    )


if __name__ == "__main__":
    main()

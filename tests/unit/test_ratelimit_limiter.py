"""The rate limiter against the test session's real Redis: GCRA figures, scripts, failure policy."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator

import pytest
import redis

from devstack.services import Service, free_port
from gateway.observability import get_metrics
from gateway.ratelimit import Policy, RateLimiter, limit_key
from gateway.ratelimit.scripts import ACQUIRE, HIT

KEY = limit_key("tickets", "user:u-1")
# Long periods: no unit comes back while a test runs, so the figures below are exact.
THREE_PER_MINUTE = Policy("tickets", 3, 60)
HUNDRED_PER_DAY = Policy("tickets", 100, 86400)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield client
    client.close()


@pytest.fixture
def limiter(raw: redis.Redis) -> RateLimiter:
    return RateLimiter(raw)


@pytest.fixture
def metrics() -> Iterator[dict[str, object]]:
    store = get_metrics()
    store.clear_metrics()
    yield store.metric_set
    store.clear_metrics()


def metric_count(metric_set: dict[str, object], name: str) -> float:
    entry = metric_set.get(name)
    return sum(entry["Value"]) if isinstance(entry, dict) else 0


def test_hit_admits_exactly_the_limit_then_denies(limiter: RateLimiter):
    allowed = [limiter.hit(KEY, THREE_PER_MINUTE).allowed for _ in range(5)]

    assert allowed == [True, True, True, False, False]


def test_hit_counts_remaining_quota_down_on_admitted_requests(limiter: RateLimiter):
    remaining = [limiter.hit(KEY, THREE_PER_MINUTE).remaining for _ in range(4)]

    assert remaining == [2, 1, 0, 0]


def test_hit_denied_says_when_one_unit_comes_back(limiter: RateLimiter):
    for _ in range(3):
        limiter.hit(KEY, THREE_PER_MINUTE)

    denied = limiter.hit(KEY, THREE_PER_MINUTE)

    # One unit returns every 20 s; the three hits took some microseconds of that already.
    assert not denied.allowed
    assert 19 < denied.retry_after <= 20
    assert denied.headers()["Retry-After"] == "20"
    assert denied.headers()["RateLimit"] == '"tickets";r=0;t=20'


def test_hit_denied_spends_nothing(limiter: RateLimiter, raw: redis.Redis):
    for _ in range(3):
        limiter.hit(KEY, THREE_PER_MINUTE)
    state = raw.get("rl:" + KEY)

    for _ in range(5):
        limiter.hit(KEY, THREE_PER_MINUTE)

    assert raw.get("rl:" + KEY) == state


def test_hit_keeps_separate_quotas_per_identity(limiter: RateLimiter):
    for _ in range(3):
        limiter.hit(KEY, THREE_PER_MINUTE)

    other = limiter.hit(limit_key("tickets", "user:u-2"), THREE_PER_MINUTE)

    assert other.allowed
    assert other.remaining == 2


def test_hit_with_a_cost_spends_that_many_units(limiter: RateLimiter):
    first = limiter.hit(KEY, HUNDRED_PER_DAY, cost=60)
    too_much = limiter.hit(KEY, HUNDRED_PER_DAY, cost=41)
    fits = limiter.hit(KEY, HUNDRED_PER_DAY, cost=40)

    assert (first.allowed, first.remaining) == (True, 40)
    assert (too_much.allowed, too_much.remaining) == (False, 40)
    assert (fits.allowed, fits.remaining) == (True, 0)


def test_hit_with_cost_zero_reads_the_quota_without_spending(limiter: RateLimiter):
    limiter.hit(KEY, THREE_PER_MINUTE)

    peeks = [limiter.hit(KEY, THREE_PER_MINUTE, cost=0).remaining for _ in range(3)]

    assert peeks == [2, 2, 2]


def test_hit_stores_state_under_the_prefix_expiring_once_the_quota_is_full(
    limiter: RateLimiter, raw: redis.Redis
):
    limiter.hit(KEY, THREE_PER_MINUTE)

    ttl_ms = raw.pttl("rl:{tickets:user:u-1}")

    assert 0 < ttl_ms <= 20_000
    assert raw.keys("*") == [b"rl:{tickets:user:u-1}"]


def test_hit_uses_a_custom_prefix(raw: redis.Redis):
    RateLimiter(raw, prefix="staging:rl:").hit(KEY, THREE_PER_MINUTE)

    assert raw.keys("*") == [b"staging:rl:{tickets:user:u-1}"]


def test_hit_after_the_limit_was_lowered_reports_nothing_remaining(limiter: RateLimiter):
    for _ in range(50):
        limiter.hit(KEY, HUNDRED_PER_DAY)

    lowered = limiter.hit(KEY, Policy("tickets", 10, 8640))

    assert not lowered.allowed
    assert lowered.remaining == 0


def test_hit_loads_the_script_again_after_redis_forgot_it(limiter: RateLimiter, raw: redis.Redis):
    limiter.hit(KEY, THREE_PER_MINUTE)
    raw.script_flush()

    again = limiter.hit(KEY, THREE_PER_MINUTE)

    assert (again.allowed, again.degraded, again.remaining) == (True, False, 1)
    assert raw.script_exists(hashlib.sha1(HIT.encode()).hexdigest()) == [True]


def test_hit_runs_the_script_by_sha_not_by_source(limiter: RateLimiter, raw: redis.Redis):
    limiter.hit(KEY, THREE_PER_MINUTE)
    raw.config_resetstat()

    limiter.hit(KEY, THREE_PER_MINUTE)

    stats = raw.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert "cmdstat_eval" not in stats


def test_two_limiters_share_one_quota_through_redis(raw: redis.Redis, redis_url: str):
    # Two warm Lambda instances: separate clients, one bucket.
    other_client = redis.Redis.from_url(redis_url)
    try:
        first, second = RateLimiter(raw), RateLimiter(other_client)
        decisions = [limiter.hit(KEY, THREE_PER_MINUTE) for limiter in (first, second, first)]
        fourth = second.hit(KEY, THREE_PER_MINUTE)
    finally:
        other_client.close()

    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert not fourth.allowed


def test_denied_hit_counts_the_rate_limited_metric(
    limiter: RateLimiter, metrics: dict[str, object]
):
    for _ in range(4):
        limiter.hit(KEY, THREE_PER_MINUTE)

    assert metric_count(metrics, "RateLimited") == 1
    assert metric_count(metrics, "RateLimitDegraded") == 0


def test_acquire_script_called_by_hand_admits_and_reports_the_microseconds_owed(
    raw: redis.Redis,
):
    # The script's contract, as docs/ratelimit.md states it, independent of the Python side.
    reply = raw.eval(ACQUIRE, 1, "rl:{hand}", 1, 20_000_000, 3, 1, 0)

    assert reply == [1, 1, 20_000_000]


def unreachable(port: int | None = None) -> redis.Redis:
    """A client built as ``gateway.redis_client`` builds it, for a port where nothing listens."""
    url = f"redis://127.0.0.1:{port or free_port()}/0"
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


def test_redis_down_fail_open_admits_and_marks_the_decision_degraded(
    metrics: dict[str, object], caplog: pytest.LogCaptureFixture
):
    limiter = RateLimiter(unreachable(), failure_policy="open")

    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        decision = limiter.hit(KEY, THREE_PER_MINUTE)

    assert (decision.allowed, decision.degraded) == (True, True)
    assert decision.headers() == {"RateLimit-Policy": '"tickets";q=3;w=60'}
    assert metric_count(metrics, "RateLimitDegraded") == 1
    assert "Redis unavailable" in caplog.text
    assert "'open'" in caplog.text


def test_redis_down_fail_closed_denies_with_retry_after(metrics: dict[str, object]):
    limiter = RateLimiter(unreachable(), failure_policy="closed")

    decision = limiter.hit(KEY, THREE_PER_MINUTE)

    assert (decision.allowed, decision.degraded) == (False, True)
    assert decision.headers()["Retry-After"] == "20"
    assert metric_count(metrics, "RateLimitDegraded") == 1
    assert metric_count(metrics, "RateLimited") == 1


def test_redis_down_warns_once_per_backoff_and_counts_every_decision(
    metrics: dict[str, object], caplog: pytest.LogCaptureFixture
):
    limiter = RateLimiter(unreachable(), backoff_seconds=3600)

    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        decisions = [limiter.hit(KEY, THREE_PER_MINUTE) for _ in range(5)]

    assert all(d.degraded and d.allowed for d in decisions)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert metric_count(metrics, "RateLimitDegraded") == 5


def test_redis_down_without_backoff_asks_redis_every_time(caplog: pytest.LogCaptureFixture):
    limiter = RateLimiter(unreachable(), backoff_seconds=0)

    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        for _ in range(3):
            limiter.hit(KEY, THREE_PER_MINUTE)

    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3


def test_redis_refusing_writes_is_treated_as_unavailable(raw: redis.Redis, redis_url: str):
    # A replica, or a primary out of memory, refuses the script's SET: the limiter degrades.
    raw.config_set("maxmemory", 1)
    raw.config_set("maxmemory-policy", "noeviction")
    try:
        decision = RateLimiter(redis.Redis.from_url(redis_url), failure_policy="closed").hit(
            KEY, THREE_PER_MINUTE
        )
    finally:
        raw.config_set("maxmemory", 0)

    assert (decision.allowed, decision.degraded) == (False, True)


def test_limiter_without_a_client_takes_the_process_client_from_the_environment(
    redis_url: str, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
):
    from gateway.redis_client import reset_redis

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_CLUSTER", "false")
    reset_redis()
    try:
        decision = RateLimiter().hit(KEY, THREE_PER_MINUTE)
    finally:
        reset_redis()

    assert (decision.allowed, decision.degraded, decision.remaining) == (True, False, 2)
    assert raw.exists("rl:" + KEY) == 1


def test_limiter_recovers_when_redis_answers_again(
    redis_factory: Callable[..., Service], caplog: pytest.LogCaptureFixture
):
    port = free_port()
    limiter = RateLimiter(unreachable(port), backoff_seconds=0)
    before = limiter.hit(KEY, THREE_PER_MINUTE)
    redis_factory(port=port)

    with caplog.at_level(logging.INFO, logger="gateway.ratelimit"):
        after = limiter.hit(KEY, THREE_PER_MINUTE)

    assert before.degraded
    assert (after.allowed, after.degraded, after.remaining) == (True, False, 2)
    assert "Redis answers again" in caplog.text

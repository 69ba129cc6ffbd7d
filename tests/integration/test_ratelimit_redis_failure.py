"""Redis failing in the middle of a test: the decision still arrives, by the failure policy.

Each test owns its Redis (``redis_factory``) and builds the limiter the way a function does, from
the environment (``REDIS_URL``, ``RATE_LIMIT_FAILURE_POLICY``) through ``gateway.redis_client``.
"No hang" is held by the pytest timeout on each test, not by a timed assertion.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest

from devstack.services import Service
from gateway.ratelimit import Decision, LoginGuard, Policy, RateLimiter, limit_key
from gateway.redis_client import reset_redis

KEY = limit_key("tickets", "user:u-1")
POLICY = Policy("tickets", 100, 60)
BOTH_POLICIES = pytest.mark.parametrize(
    ("failure_policy", "allowed"), [("open", True), ("closed", False)]
)


@pytest.fixture
def function_env(
    redis_factory: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], tuple[Service, RateLimiter]]]:
    """Build ``(redis, limiter)`` for a failure policy, as a warm function would hold them."""

    def build(failure_policy: str) -> tuple[Service, RateLimiter]:
        service = redis_factory()
        monkeypatch.setenv("REDIS_URL", f"redis://{service.address}/0")
        monkeypatch.setenv("REDIS_CLUSTER", "false")
        monkeypatch.setenv("REDIS_SOCKET_TIMEOUT_SECONDS", "0.25")
        monkeypatch.setenv("RATE_LIMIT_FAILURE_POLICY", failure_policy)
        monkeypatch.setenv("RATE_LIMIT_REDIS_BACKOFF_SECONDS", "0")
        reset_redis()
        return service, RateLimiter.from_env()

    yield build
    reset_redis()


def hits(limiter: RateLimiter, count: int) -> list[Decision]:
    return [limiter.hit(KEY, POLICY) for _ in range(count)]


@pytest.mark.timeout(30)
@BOTH_POLICIES
def test_redis_killed_mid_test_decisions_follow_the_failure_policy(
    function_env: Callable[[str], tuple[Service, RateLimiter]], failure_policy: str, allowed: bool
):
    service, limiter = function_env(failure_policy)
    before = hits(limiter, 3)

    service.kill()
    after = hits(limiter, 3)

    assert [(d.allowed, d.degraded, d.remaining) for d in before] == [
        (True, False, 99),
        (True, False, 98),
        (True, False, 97),
    ]
    assert all(d.degraded for d in after)
    assert all(d.allowed is allowed for d in after)
    if not allowed:
        assert all(d.headers()["Retry-After"] == "1" for d in after)


@pytest.mark.timeout(30)
@BOTH_POLICIES
def test_redis_frozen_mid_test_decisions_arrive_after_the_socket_timeout(
    function_env: Callable[[str], tuple[Service, RateLimiter]], failure_policy: str, allowed: bool
):
    # SIGSTOP: the kernel still holds the connection open, but nothing ever answers. This is
    # the case that hangs a client without a read timeout.
    service, limiter = function_env(failure_policy)
    before = hits(limiter, 1)

    os.kill(service.process.pid, signal.SIGSTOP)
    try:
        after = hits(limiter, 2)
    finally:
        os.kill(service.process.pid, signal.SIGCONT)

    assert not before[0].degraded
    assert all(d.degraded and d.allowed is allowed for d in after)


@pytest.mark.timeout(30)
def test_redis_restarted_mid_test_decisions_come_from_redis_again(
    function_env: Callable[[str], tuple[Service, RateLimiter]],
    redis_factory: Callable[..., Service],
):
    service, limiter = function_env("closed")
    hits(limiter, 2)
    service.kill()
    during = hits(limiter, 1)

    redis_factory(port=service.port)
    after = hits(limiter, 1)

    assert during[0].degraded
    # A restarted Redis without persistence has forgotten the quota: it starts full again.
    assert (after[0].allowed, after[0].degraded, after[0].remaining) == (True, False, 99)


@pytest.mark.timeout(30)
@BOTH_POLICIES
def test_login_guard_with_redis_killed_mid_test_follows_the_failure_policy(
    function_env: Callable[[str], tuple[Service, RateLimiter]], failure_policy: str, allowed: bool
):
    service, limiter = function_env(failure_policy)
    guard = LoginGuard.from_env(limiter)
    first = guard.check("alice", "203.0.113.10")
    guard.record("alice", "203.0.113.10", 401, check=first)

    service.kill()
    during = guard.check("alice", "203.0.113.10")
    guard.record("alice", "203.0.113.10", 200, check=during)

    assert (first.allowed, first.degraded) == (True, False)
    assert (during.allowed, during.degraded) == (allowed, True)

"""Login protection against the test session's real Redis: brute force stopped, owner let in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from devstack.services import free_port
from gateway.ratelimit import LoginGuard, Policy, RateLimiter

ATTACKER = "198.51.100.66"
OWNER = "203.0.113.10"


@pytest.fixture
def limiter(redis_url: str) -> Iterator[RateLimiter]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield RateLimiter(client)
    client.close()


def make_guard(limiter: RateLimiter, **overrides: object) -> LoginGuard:
    # Periods of a day: nothing refills while a test runs, so every count is exact.
    settings: dict[str, object] = {
        "per_ip": Policy("login-ip", 50, 86400),
        "per_ip_failures": Policy("login-ip-failures", 20, 86400),
        "per_user_failures": Policy("login-user-failures", 3, 86400),
        "per_user_global_failures": Policy("login-user-global-failures", 6, 86400),
    }
    settings.update(overrides)
    return LoginGuard(limiter, **settings)  # type: ignore[arg-type]


@pytest.fixture
def guard(limiter: RateLimiter) -> LoginGuard:
    return make_guard(limiter)


def attempt(guard: LoginGuard, username: str | None, ip: str, status: int) -> bool:
    """One login as the proxy does it: check, and if admitted, record the Auth answer."""
    decision = guard.check(username, ip)
    if decision.allowed:
        guard.record(username, ip, status, check=decision)
    return decision.allowed


def test_failed_logins_for_one_user_from_one_address_stop_at_the_pair_limit(guard: LoginGuard):
    outcomes = [attempt(guard, "alice", ATTACKER, 401) for _ in range(5)]

    assert outcomes == [True, True, True, False, False]
    assert guard.check("alice", ATTACKER).policy.name == "login-user-failures"


def test_owner_from_another_address_is_not_locked_out_by_the_attacker(guard: LoginGuard):
    for _ in range(5):
        attempt(guard, "alice", ATTACKER, 401)

    owner = guard.check("alice", OWNER)

    assert owner.allowed


def test_a_successful_login_clears_the_pairs_failures(guard: LoginGuard):
    attempt(guard, "alice", OWNER, 401)
    attempt(guard, "alice", OWNER, 401)
    attempt(guard, "alice", OWNER, 200)

    later = [attempt(guard, "alice", OWNER, 401) for _ in range(4)]

    assert later == [True, True, True, False]


def test_parallel_attempts_reserve_failures_before_auth_answers(guard: LoginGuard):
    # Ten guesses in flight at once: no answer has come back, yet only three reach Auth.
    decisions = [guard.check("alice", ATTACKER) for _ in range(10)]

    assert [d.allowed for d in decisions].count(True) == 3


def test_answers_other_than_401_give_the_reserved_failure_back(guard: LoginGuard):
    outcomes = [attempt(guard, "alice", OWNER, status) for status in (503, 504, 400, 403) * 3]

    assert all(outcomes)
    assert guard.check("alice", OWNER).remaining == 2


def test_usernames_in_other_letter_cases_share_the_failure_count(guard: LoginGuard):
    for name in ("alice", "Alice", "ALICE"):
        attempt(guard, name, ATTACKER, 401)

    assert not guard.check(" aLiCe ", ATTACKER).allowed


def test_spraying_many_usernames_from_one_address_stops_at_the_address_failure_limit(
    guard: LoginGuard,
):
    outcomes = [attempt(guard, f"user{i}", ATTACKER, 401) for i in range(25)]

    assert outcomes.count(True) == 20
    denied = guard.check("someone-new", ATTACKER)
    assert (denied.allowed, denied.policy.name) == (False, "login-ip-failures")


def test_every_attempt_counts_against_the_address_whatever_the_outcome(limiter: RateLimiter):
    guard = make_guard(limiter, per_ip=Policy("login-ip", 4, 86400))

    outcomes = [attempt(guard, f"user{i}", OWNER, 200) for i in range(6)]

    assert outcomes == [True, True, True, True, False, False]
    assert guard.check("user9", OWNER).policy.name == "login-ip"


def test_a_botnet_on_one_username_is_stopped_at_the_global_username_limit(guard: LoginGuard):
    bots = [f"192.0.2.{i}" for i in range(1, 11)]

    outcomes = [attempt(guard, "alice", bot, 401) for bot in bots]

    assert outcomes.count(True) == 6
    denied = guard.check("alice", "192.0.2.200")
    assert (denied.allowed, denied.policy.name) == (False, "login-user-global-failures")


def test_owner_at_a_trusted_address_gets_in_while_a_botnet_exhausts_the_username(
    guard: LoginGuard,
):
    assert attempt(guard, "alice", OWNER, 200)
    for i in range(1, 11):
        attempt(guard, "alice", f"192.0.2.{i}", 401)

    owner = guard.check("alice", OWNER)
    newcomer = guard.check("alice", "192.0.2.250")

    assert owner.allowed
    assert not newcomer.allowed


def test_trust_disabled_lets_the_global_username_limit_apply_everywhere(limiter: RateLimiter):
    guard = make_guard(limiter, trust_seconds=0)
    attempt(guard, "alice", OWNER, 200)
    for i in range(1, 11):
        attempt(guard, "alice", f"192.0.2.{i}", 401)

    assert not guard.check("alice", OWNER).allowed


def test_without_a_global_username_limit_a_botnet_is_held_only_per_address(
    limiter: RateLimiter,
):
    guard = make_guard(limiter, per_user_global_failures=None)

    outcomes = [attempt(guard, "alice", f"192.0.2.{i}", 401) for i in range(1, 11)]

    assert all(outcomes)


def test_ipv6_attacker_rotating_addresses_in_one_64_counts_as_one_address(guard: LoginGuard):
    addresses = [f"2001:db8:1:2::{i:x}" for i in range(1, 6)]

    outcomes = [attempt(guard, "alice", address, 401) for address in addresses]

    assert outcomes == [True, True, True, False, False]


def test_missing_username_is_limited_by_address_only(guard: LoginGuard, redis_url: str):
    outcomes = [attempt(guard, None, ATTACKER, 401) for _ in range(3)]
    outcomes.append(attempt(guard, "", ATTACKER, 401))

    client = redis.Redis.from_url(redis_url)
    keys = sorted(key.decode() for key in client.keys("*"))
    client.close()
    assert all(outcomes)
    assert keys == [f"rl:{{login}}:ip:{ATTACKER}", f"rl:{{login}}:ipf:{ATTACKER}"]


def test_admitted_check_names_the_policy_closest_to_exhaustion(guard: LoginGuard):
    attempt(guard, "alice", OWNER, 401)

    decision = guard.check("alice", OWNER)

    assert decision.policy.name == "login-user-failures"
    assert decision.remaining == 1
    assert decision.headers()["RateLimit-Policy"] == '"login-user-failures";q=3;w=86400'


def test_recording_a_denied_check_gives_nothing_back(guard: LoginGuard):
    for _ in range(3):
        attempt(guard, "alice", ATTACKER, 401)
    denied = guard.check("alice", ATTACKER)

    for _ in range(5):
        guard.record("alice", ATTACKER, 429, check=denied)

    assert not guard.check("alice", ATTACKER).allowed


def test_every_login_key_shares_one_hash_tag(guard: LoginGuard, redis_url: str):
    attempt(guard, "alice", OWNER, 200)
    attempt(guard, "bob", ATTACKER, 401)

    client = redis.Redis.from_url(redis_url)
    keys = [key.decode() for key in client.keys("*")]
    client.close()
    assert len(keys) >= 5
    assert all(key.startswith("rl:{login}:") for key in keys)
    assert not any("alice" in key or "bob" in key for key in keys)


def test_redis_down_check_follows_the_guards_failure_policy():
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.25)
    limiter = RateLimiter(dead, failure_policy="open")
    closed = make_guard(limiter, failure_policy="closed")
    inherited = make_guard(limiter)

    refused = closed.check("alice", OWNER)
    admitted = inherited.check("alice", OWNER)

    assert (refused.allowed, refused.degraded, refused.policy.name) == (False, True, "login-ip")
    assert (admitted.allowed, admitted.degraded) == (True, True)


def test_redis_down_record_returns_quietly():
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.25)
    guard = make_guard(RateLimiter(dead, backoff_seconds=0))

    guard.record("alice", OWNER, 200)
    guard.record("alice", OWNER, 401)


def test_login_guard_refuses_a_negative_trust_period(limiter: RateLimiter):
    with pytest.raises(ValueError, match="trust_seconds"):
        make_guard(limiter, trust_seconds=-1)


def test_success_clears_only_the_pair_even_when_policies_are_one_object(limiter: RateLimiter):
    shared = Policy("login-failures", 3, 86400)
    guard = make_guard(limiter, per_ip_failures=shared, per_user_failures=shared)
    attempt(guard, "alice", ATTACKER, 401)
    attempt(guard, "alice", ATTACKER, 401)
    attempt(guard, "bob", ATTACKER, 200)
    attempt(guard, "carol", ATTACKER, 401)

    assert not guard.check("dave", ATTACKER).allowed


def test_login_guard_from_env_names_a_negative_trust_period(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOGIN_TRUST_SECONDS", "-5")

    with pytest.raises(ValueError, match="LOGIN_TRUST_SECONDS"):
        LoginGuard.from_env(RateLimiter())

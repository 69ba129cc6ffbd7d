"""Rate-limit policies, decisions, headers and keys: the parts that need no Redis."""

from __future__ import annotations

import pytest

from gateway.ratelimit import (
    Decision,
    LoginGuard,
    Policy,
    PolicyError,
    RateLimiter,
    RateLimitError,
    client_identity,
    ip_identity,
    limit_key,
    rate_limit_headers,
)
from gateway.ratelimit.login import username_digest

TICKETS = Policy("tickets", 100, 60)


@pytest.mark.parametrize(
    ("spec", "limit", "period"),
    [
        ("100/60", 100, 60.0),
        (" 5 / 15m ", 5, 900.0),
        ("1/1h", 1, 3600.0),
        ("10/0.5", 10, 0.5),
        ("7/2d", 7, 172800.0),
        ("3/30s", 3, 30.0),
    ],
)
def test_policy_parse_reads_limit_and_period_with_units(spec: str, limit: int, period: float):
    policy = Policy.parse(spec, "p")

    assert (policy.name, policy.limit, policy.period_seconds) == ("p", limit, period)


@pytest.mark.parametrize(
    "spec", ["", "100", "100/", "/60", "abc/60", "100/60x", "0/60", "100/0", "-1/60", "1e3/60"]
)
def test_policy_parse_rejects_junk_with_a_policy_error_naming_the_spec(spec: str):
    with pytest.raises(PolicyError, match="p"):
        Policy.parse(spec, "p")


def test_policy_parse_rejects_a_non_string_spec():
    with pytest.raises(PolicyError, match="expected a string"):
        Policy.parse(100, "p")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", 'quo"te', "back\\slash", "x" * 65, "-lead"])
def test_policy_rejects_a_name_that_would_need_escaping_in_headers(name: str):
    with pytest.raises(PolicyError, match="policy name"):
        Policy(name, 1, 1)


@pytest.mark.parametrize(
    ("limit", "period"), [(0, 60), (True, 60), (1.5, 60), (10, 0), (10, float("inf")), (10, -1)]
)
def test_policy_rejects_limits_and_periods_out_of_range(limit: object, period: object):
    with pytest.raises(PolicyError):
        Policy("p", limit, period)  # type: ignore[arg-type]


def test_policy_error_is_a_value_error_and_a_rate_limit_error():
    with pytest.raises(PolicyError) as caught:
        Policy.parse("nope", "p")

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RateLimitError)


def test_policy_from_env_defaults_to_100_per_60_seconds(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RATE_LIMIT", raising=False)

    assert Policy.from_env("auth") == Policy("auth", 100, 60)


def test_policy_from_env_reads_rate_limit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RATE_LIMIT", "20/10")

    assert Policy.from_env("tickets") == Policy("tickets", 20, 10)


def test_policy_from_env_prefers_an_explicit_spec(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RATE_LIMIT", "20/10")

    assert Policy.from_env("tickets", "3/1") == Policy("tickets", 3, 1)


def test_policy_from_env_names_the_variable_when_it_is_junk(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RATE_LIMIT", "lots")

    with pytest.raises(PolicyError, match="RATE_LIMIT"):
        Policy.from_env("tickets")


def test_policy_interval_rounds_up_to_a_whole_microsecond():
    assert Policy("p", 100, 60).interval_us == 600_000
    assert Policy("p", 7, 60).interval_us == 8_571_429
    assert Policy("p", 10, 0.5).window_seconds == 1
    assert Policy("p", 10, 60.2).window_seconds == 61


def test_decision_headers_on_an_admitted_request_carry_policy_and_remaining_quota():
    decision = Decision(True, 100, 99, 0.6, 0.0, TICKETS)

    assert decision.headers() == {
        "RateLimit-Policy": '"tickets";q=100;w=60',
        "RateLimit": '"tickets";r=99;t=1',
    }


def test_decision_headers_on_a_full_quota_leave_out_the_reset():
    decision = Decision(True, 100, 100, 0.0, 0.0, TICKETS)

    assert decision.headers()["RateLimit"] == '"tickets";r=100'


def test_decision_headers_on_a_denied_request_add_retry_after_not_before_the_reset():
    decision = Decision(False, 100, 0, 12.2, 12.2, TICKETS)

    assert decision.headers() == {
        "RateLimit-Policy": '"tickets";q=100;w=60',
        "RateLimit": '"tickets";r=0;t=13',
        "Retry-After": "13",
    }


def test_decision_retry_after_is_at_least_one_second():
    decision = Decision(False, 100, 0, 0.01, 0.01, TICKETS)

    assert decision.headers()["Retry-After"] == "1"


def test_degraded_open_decision_states_the_policy_but_no_remaining_quota():
    decision = Decision(True, 100, 100, 0.0, 0.0, TICKETS, degraded=True)

    assert decision.headers() == {"RateLimit-Policy": '"tickets";q=100;w=60'}


def test_degraded_closed_decision_tells_the_client_when_to_retry():
    decision = Decision(False, 100, 0, 0.6, 0.6, TICKETS, degraded=True)

    headers = decision.headers()

    assert headers["RateLimit"] == '"tickets";r=0;t=1'
    assert headers["Retry-After"] == "1"


def test_rate_limit_headers_join_several_policies_and_take_the_latest_retry():
    login = Policy("login-ip", 30, 60)
    admitted = Decision(True, 100, 42, 0.6, 0.0, TICKETS)
    denied = Decision(False, 30, 0, 2.0, 2.0, login)

    headers = rate_limit_headers([admitted, denied])

    assert headers == {
        "RateLimit-Policy": '"tickets";q=100;w=60, "login-ip";q=30;w=60',
        "RateLimit": '"tickets";r=42;t=1, "login-ip";r=0;t=2',
        "Retry-After": "2",
    }


def test_rate_limit_headers_of_no_decisions_are_empty():
    assert rate_limit_headers([]) == {}


def test_limit_key_is_one_hash_tag_per_route_group_and_identity():
    assert limit_key("tickets", "user:u-1") == "{tickets:user:u-1}"


@pytest.mark.parametrize(("group", "identity"), [("", "user:1"), ("tickets", "")])
def test_limit_key_refuses_an_empty_part(group: str, identity: str):
    with pytest.raises(PolicyError):
        limit_key(group, identity)


def test_client_identity_is_the_user_on_protected_routes_and_the_address_on_public_ones():
    assert client_identity("u-1", "203.0.113.9") == "user:u-1"
    assert client_identity(None, "203.0.113.9") == "ip:203.0.113.9"
    assert client_identity("", "203.0.113.9") == "ip:203.0.113.9"


@pytest.mark.parametrize(
    ("source", "identity"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("not-an-ip", "not-an-ip"),
        ("  ", "unknown"),
    ],
)
def test_ip_identity_groups_ipv6_by_its_64_network(source: str, identity: str):
    assert ip_identity(source) == identity


def test_username_digest_ignores_case_width_and_surrounding_space():
    assert username_digest("Alice") == username_digest(" alice ")
    assert username_digest(
        "\uff21\uff2c\uff29\uff23\uff25"
    )  # fullwidth ALICE == username_digest("alice")
    assert username_digest("alice") != username_digest("alicf")
    assert username_digest("   ") is None
    assert username_digest(None) is None


def test_rate_limiter_refuses_an_unknown_failure_policy():
    with pytest.raises(PolicyError, match="open"):
        RateLimiter(failure_policy="sometimes")  # type: ignore[arg-type]


def test_rate_limiter_from_env_reads_the_failure_policy(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RATE_LIMIT_FAILURE_POLICY", " Closed ")
    monkeypatch.setenv("RATE_LIMIT_REDIS_BACKOFF_SECONDS", "2.5")

    limiter = RateLimiter.from_env()

    assert (limiter.failure_policy, limiter.backoff_seconds) == ("closed", 2.5)


def test_rate_limiter_from_env_names_a_bad_failure_policy(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RATE_LIMIT_FAILURE_POLICY", "maybe")

    with pytest.raises(PolicyError, match="RATE_LIMIT_FAILURE_POLICY"):
        RateLimiter.from_env()


@pytest.mark.parametrize("cost", [-1, 101, True, 1.0])
def test_rate_limiter_hit_refuses_a_cost_outside_zero_to_the_limit(cost: object):
    with pytest.raises(PolicyError, match="cost"):
        RateLimiter().hit("{k}", TICKETS, cost)  # type: ignore[arg-type]


def test_login_guard_from_env_uses_documented_defaults(monkeypatch: pytest.MonkeyPatch):
    for name in (
        "LOGIN_PER_IP",
        "LOGIN_PER_IP_FAILURES",
        "LOGIN_PER_USER_FAILURES",
        "LOGIN_PER_USER_GLOBAL_FAILURES",
        "LOGIN_TRUST_SECONDS",
        "LOGIN_FAILURE_POLICY",
    ):
        monkeypatch.delenv(name, raising=False)

    guard = LoginGuard.from_env(RateLimiter(failure_policy="closed"))

    assert guard.per_ip == Policy("login-ip", 30, 60)
    assert guard.per_ip_failures == Policy("login-ip-failures", 50, 3600)
    assert guard.per_user_failures == Policy("login-user-failures", 5, 900)
    assert guard.per_user_global_failures == Policy("login-user-global-failures", 100, 3600)
    assert guard.trust_seconds == 30 * 86400
    assert guard.failure_policy == "closed"


def test_login_guard_from_env_reads_every_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOGIN_PER_IP", "10/60")
    monkeypatch.setenv("LOGIN_PER_IP_FAILURES", "20/1h")
    monkeypatch.setenv("LOGIN_PER_USER_FAILURES", "3/5m")
    monkeypatch.setenv("LOGIN_PER_USER_GLOBAL_FAILURES", "off")
    monkeypatch.setenv("LOGIN_TRUST_SECONDS", "0")
    monkeypatch.setenv("LOGIN_FAILURE_POLICY", "open")

    guard = LoginGuard.from_env(RateLimiter(failure_policy="closed"))

    assert (guard.per_ip.limit, guard.per_ip_failures.limit, guard.per_user_failures.limit) == (
        10,
        20,
        3,
    )
    assert guard.per_user_failures.period_seconds == 300
    assert guard.per_user_global_failures is None
    assert guard.trust_seconds == 0
    assert guard.failure_policy == "open"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOGIN_PER_USER_FAILURES", "five"),
        ("LOGIN_PER_USER_GLOBAL_FAILURES", "x/y"),
        ("LOGIN_FAILURE_POLICY", "ajar"),
    ],
)
def test_login_guard_from_env_names_the_bad_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
):
    monkeypatch.setenv(variable, value)

    with pytest.raises(PolicyError, match=variable):
        LoginGuard.from_env(RateLimiter())


@pytest.mark.parametrize("username", [42, ["alice"], {"name": "alice"}, b"alice"])
def test_username_digest_treats_a_non_string_username_as_none(username: object):
    assert username_digest(username) is None

"""Circuit breaker: every transition, shared through Redis and in the per-instance fallback."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from devstack.services import Service, free_port
from gateway.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpen, Permit


class CountingRedis(redis.Redis):
    """A real client that counts the commands it sends."""

    commands = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands += 1
        return super().execute_command(*args, **options)


def _client(url: str) -> CountingRedis:
    return CountingRedis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


def _dead_client() -> CountingRedis:
    return _client(f"redis://127.0.0.1:{free_port()}/0")


Factory = Callable[..., CircuitBreaker]


@pytest.fixture(params=["shared", "local"])
def breakers(request: pytest.FixtureRequest) -> Factory:
    """Breakers named alike: sharing one Redis, or each on its own with Redis unreachable."""
    mode = request.param

    def make(name: str = "assignments", **options: Any) -> CircuitBreaker:
        client = _client(request.getfixturevalue("redis_url")) if mode == "shared" else None
        options.setdefault("failure_threshold", 3)
        options.setdefault("cooldown", 0.3)
        options.setdefault("sync_interval", 0.0)
        options.setdefault("redis_retry", 60.0)
        return CircuitBreaker(name, client=client or _dead_client(), **options)

    return make


def _fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), success=False)


def test_breaker_opens_after_threshold_consecutive_failures(breakers: Factory) -> None:
    breaker = breakers()
    _fail(breaker, 2)
    assert breaker.state == CLOSED
    _fail(breaker)
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen) as caught:
        breaker.acquire()
    assert 0 < caught.value.retry_after <= 0.3


def test_breaker_success_resets_the_consecutive_failure_count(breakers: Factory) -> None:
    breaker = breakers()
    _fail(breaker, 2)
    breaker.record(breaker.acquire(), success=True)
    _fail(breaker, 2)
    assert breaker.state == CLOSED
    assert not breaker.acquire().probe


def test_breaker_goes_half_open_after_the_cooldown_and_closes_on_probe_success(
    breakers: Factory,
) -> None:
    breaker = breakers()
    _fail(breaker, 3)
    time.sleep(0.35)
    probe = breaker.acquire()
    assert probe.probe
    assert breaker.state == HALF_OPEN
    breaker.record(probe, success=True)
    assert breaker.state == CLOSED
    assert not breaker.acquire().probe


def test_breaker_probe_failure_opens_for_another_cooldown(breakers: Factory) -> None:
    breaker = breakers()
    _fail(breaker, 3)
    time.sleep(0.35)
    probe = breaker.acquire()
    breaker.record(probe, success=False)
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen):
        breaker.acquire()


def test_breaker_lets_one_probe_at_a_time_until_its_lease_ends(breakers: Factory) -> None:
    breaker = breakers(probe_lease=0.3)
    _fail(breaker, 3)
    time.sleep(0.35)
    assert breaker.acquire().probe
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    # The probe never reports (its instance died): after the lease, a new probe is let through.
    time.sleep(0.35)
    assert breaker.acquire().probe


def test_breaker_ignores_late_results_of_calls_started_before_opening(breakers: Factory) -> None:
    breaker = breakers()
    late = [breaker.acquire() for _ in range(2)]
    _fail(breaker, 3)
    for permit in late:
        breaker.record(permit, success=True)
    assert breaker.state == OPEN
    time.sleep(0.35)
    probe = breaker.acquire()
    breaker.record(Permit(probe=False, shared=probe.shared), success=False)
    assert breaker.state == HALF_OPEN


def test_breaker_failures_of_one_instance_protect_the_others(redis_url: str) -> None:
    first = CircuitBreaker(
        "tickets", client=_client(redis_url), failure_threshold=3, sync_interval=0.0
    )
    second = CircuitBreaker(
        "tickets", client=_client(redis_url), failure_threshold=3, sync_interval=0.0
    )
    _fail(first, 2)
    _fail(second, 1)
    with pytest.raises(CircuitOpen):
        first.acquire()
    with pytest.raises(CircuitOpen):
        second.acquire()


def test_breaker_only_one_instance_gets_the_half_open_probe(redis_url: str) -> None:
    instances = [
        CircuitBreaker(
            "tickets",
            client=_client(redis_url),
            failure_threshold=1,
            cooldown=0.2,
            # A lease as short as the cooldown could run out on a slow machine while the five
            # ask in turn, and then a second probe is right; this test is about one lease.
            probe_lease=30,
            sync_interval=0.0,
        )
        for _ in range(5)
    ]
    _fail(instances[0])
    time.sleep(0.25)
    probes = 0
    for breaker in instances:
        with contextlib.suppress(CircuitOpen):
            probes += breaker.acquire().probe
    assert probes == 1


def test_breaker_rejects_while_open_without_network_io(redis_url: str) -> None:
    client = _client(redis_url)
    breaker = CircuitBreaker("tickets", client=client, failure_threshold=1, cooldown=30)
    _fail(breaker)
    sent = client.commands
    for _ in range(100):
        with pytest.raises(CircuitOpen):
            breaker.acquire()
    assert client.commands == sent


def test_breaker_open_for_reports_the_known_cooldown_without_io(redis_url: str) -> None:
    client = _client(redis_url)
    breaker = CircuitBreaker("tickets", client=client, failure_threshold=1, cooldown=30)
    assert breaker.open_for() == 0.0
    _fail(breaker)
    sent = client.commands
    assert 29 < breaker.open_for() <= 30
    assert client.commands == sent


def test_breaker_trusts_a_healthy_closed_state_within_the_sync_interval(redis_url: str) -> None:
    client = _client(redis_url)
    breaker = CircuitBreaker("tickets", client=client, sync_interval=60)
    breaker.record(breaker.acquire(), success=True)
    sent = client.commands
    for _ in range(20):
        breaker.record(breaker.acquire(), success=True)
    assert client.commands == sent
    breaker.record(breaker.acquire(), success=False)  # a failure always reaches Redis
    assert client.commands > sent


def test_breaker_state_lives_in_a_hash_tagged_key(
    redis_url: str, redis_client: redis.Redis
) -> None:
    breaker = CircuitBreaker("assignments", client=_client(redis_url), failure_threshold=1)
    _fail(breaker)
    assert redis_client.hget("cb:{assignments}", "state") == OPEN


def test_breaker_falls_back_to_instance_state_when_redis_dies(
    redis_factory: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    service = redis_factory()
    breaker = CircuitBreaker(
        "tickets",
        client=_client(f"redis://{service.address}/0"),
        failure_threshold=2,
        sync_interval=0.0,
        redis_retry=60,
    )
    _fail(breaker)
    service.kill()
    caplog.set_level(logging.WARNING, logger="gateway.breaker")
    permit = breaker.acquire()
    assert not permit.shared
    breaker.record(permit, success=False)
    _fail(breaker)
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_breaker_emits_a_state_change_metric_per_transition(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker = CircuitBreaker(
        "tickets", client=_client(redis_url), failure_threshold=1, cooldown=0.2, sync_interval=0.0
    )
    _fail(breaker)
    time.sleep(0.25)
    breaker.record(breaker.acquire(), success=True)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    changes = [line["state"] for line in lines if "BreakerStateChange" in line]
    assert changes == [OPEN, HALF_OPEN, CLOSED]
    assert all(line["breaker"] == "tickets" for line in lines)


def test_breaker_refuses_nonsense_settings() -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ConfigError):
        CircuitBreaker("x", cooldown=0)

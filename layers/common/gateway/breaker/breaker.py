"""A circuit breaker whose state is shared through Redis, with a per-instance fallback.

Shared, because Lambda runs many instances of one function: when the Assignment service fails,
the instance that saw the failures opens the circuit for all of them. Each decision that can
change the state is one Lua script (see :mod:`gateway.breaker.state`), so two instances cannot
both take the half-open probe or both open the circuit.

Round trips are spared where being a little late is harmless:

- an open circuit is remembered in process memory until its cool-down ends, so a rejection does
  no network I/O at all;
- a closed circuit with no recorded failures is trusted for ``sync_interval`` seconds after the
  last look at Redis, so a healthy upstream costs no Redis round trip within it. Another
  instance's opening therefore reaches this one within ``sync_interval``, or at its next failure.

When Redis cannot be reached (an error or the client's socket timeout), the breaker logs one
WARNING, keeps its state in process memory for ``redis_retry`` seconds, then tries Redis again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from gateway.breaker.errors import CircuitOpen
from gateway.breaker.state import (
    ACQUIRE_SCRIPT,
    CLOSED,
    HALF_OPEN,
    OPEN,
    RECORD_SCRIPT,
    LocalState,
    Outcome,
)
from gateway.config import ConfigError, env_float, env_int
from gateway.observability import get_metrics
from gateway.redis_client import RedisLike, get_redis

__all__ = ["CircuitBreaker", "Permit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; hand it back with :meth:`CircuitBreaker.record`.

    ``probe`` is True for the single half-open trial call; ``shared`` says whether Redis granted
    it (else the per-instance fallback did, and the result is recorded there).
    """

    probe: bool = False
    shared: bool = True


class CircuitBreaker:
    """Breaker ``name`` guarding one upstream; thread-safe, one instance per warm function.

    Environment variables read by :meth:`from_env`: ``BREAKER_FAILURE_THRESHOLD`` (default 5),
    ``BREAKER_COOLDOWN_SECONDS`` (default 30), ``BREAKER_SYNC_SECONDS`` (default 1).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        probe_lease: float | None = None,
        client: RedisLike | None = None,
        sync_interval: float = 1.0,
        redis_retry: float = 1.0,
        prefix: str = "cb:",
    ) -> None:
        if failure_threshold < 1:
            raise ConfigError(f"breaker failure threshold must be at least 1: {failure_threshold}")
        if cooldown <= 0:
            raise ConfigError(f"breaker cool-down must be positive, got {cooldown}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.probe_lease = probe_lease or cooldown
        self.sync_interval = sync_interval
        self.redis_retry = redis_retry
        self.key = f"{prefix}{{{name}}}"
        self._client = client
        self._scripts: tuple[redis.commands.core.Script, redis.commands.core.Script] | None = None
        self._local = LocalState(failure_threshold, cooldown, self.probe_lease)

        # What this instance last learnt of the shared state.
        self._open_until = 0.0
        self._known = ""
        self._known_failures = 0
        self._synced_at = float("-inf")
        self._redis_down_until = 0.0

    @classmethod
    def from_env(
        cls, name: str, *, client: RedisLike | None = None, probe_lease: float | None = None
    ) -> CircuitBreaker:
        """A breaker configured from the ``BREAKER_*`` environment variables."""
        return cls(
            name,
            failure_threshold=env_int("BREAKER_FAILURE_THRESHOLD", 5),
            cooldown=env_float("BREAKER_COOLDOWN_SECONDS", 30.0),
            sync_interval=env_float("BREAKER_SYNC_SECONDS", 1.0),
            probe_lease=probe_lease,
            client=client,
        )

    @property
    def state(self) -> str:
        """The state as this instance last saw it: closed, open or half_open."""
        if time.monotonic() < self._redis_down_until:
            return self._local.state
        return self._known or CLOSED

    def open_for(self) -> float:
        """Seconds left of a cool-down this instance knows of; 0.0 if none. Never does I/O.

        Lets a caller turn a request away before spending anything else on it (a rate-limit
        round trip); :meth:`acquire` is still the call that decides.
        """
        return max(0.0, self._open_until - time.monotonic())

    def acquire(self) -> Permit:
        """A permit for one call, or :class:`CircuitOpen` if the upstream must be spared."""
        now = time.monotonic()
        if now < self._open_until:
            raise CircuitOpen(self.name, self._open_until - now)
        if self._known == CLOSED and now - self._synced_at < self.sync_interval:
            return Permit()
        if now < self._redis_down_until:
            return self._acquire_locally()

        try:
            acquire_script, _ = self._load()
            outcome = Outcome.from_script(
                acquire_script(keys=[self.key], args=[_ms(self.cooldown), _ms(self.probe_lease)])
            )
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return self._acquire_locally()

        self._learn(outcome)
        if outcome.verdict == "probe":
            self._transition(outcome.previous, HALF_OPEN)
            return Permit(probe=True)
        if outcome.verdict == CLOSED:
            return Permit()
        raise CircuitOpen(self.name, outcome.wait)

    def record(self, permit: Permit, *, success: bool) -> None:
        """Report how the permitted call went: an answer (success) or a failure or timeout."""
        if not permit.shared:
            self._apply(self._local.record(success, permit.probe), shared=False)
            return
        fresh = time.monotonic() - self._synced_at < self.sync_interval
        if success and not permit.probe and fresh and self._known_failures == 0:
            return

        try:
            _, record_script = self._load()
            outcome = Outcome.from_script(
                record_script(
                    keys=[self.key],
                    args=[
                        "success" if success else "failure",
                        self.failure_threshold,
                        _ms(self.cooldown),
                        int(permit.probe),
                    ],
                )
            )
        except redis.RedisError as exc:
            self._redis_failed(exc)
            self._apply(self._local.record(success, probe=False), shared=False)
            return
        self._apply(outcome, shared=True)

    def _acquire_locally(self) -> Permit:
        outcome = self._local.acquire()
        if outcome.verdict == "probe":
            self._transition(outcome.previous, HALF_OPEN)
            return Permit(probe=True, shared=False)
        if outcome.verdict == CLOSED:
            return Permit(shared=False)
        raise CircuitOpen(self.name, outcome.wait)

    def _apply(self, outcome: Outcome, *, shared: bool) -> None:
        if shared:
            self._learn(outcome)
        if outcome.previous:
            self._transition(outcome.previous, outcome.verdict)

    def _learn(self, outcome: Outcome) -> None:
        now = time.monotonic()
        self._synced_at = now
        self._known = HALF_OPEN if outcome.verdict == "probe" else outcome.verdict
        self._known_failures = outcome.failures
        self._open_until = now + outcome.wait if outcome.verdict == OPEN else 0.0

    def _load(self) -> tuple[redis.commands.core.Script, redis.commands.core.Script]:
        if self._scripts is None:
            client = self._client if self._client is not None else get_redis()
            # register_script runs EVALSHA and loads the script again on NOSCRIPT.
            self._scripts = (
                client.register_script(ACQUIRE_SCRIPT),
                client.register_script(RECORD_SCRIPT),
            )
        return self._scripts

    def _redis_failed(self, exc: redis.RedisError) -> None:
        now = time.monotonic()
        if now >= self._redis_down_until:
            logger.warning(
                "breaker %s: Redis unreachable (%s: %s); per-instance state for %.1fs",
                self.name,
                type(exc).__name__,
                exc,
                self.redis_retry,
            )
            _count("BreakerRedisFallback", self.name)
        self._redis_down_until = now + self.redis_retry
        self._known = ""

    def _transition(self, previous: str, state: str) -> None:
        if previous == state:
            return
        if state == OPEN:
            logger.warning("breaker %s: %s -> open for %.1fs", self.name, previous, self.cooldown)
        else:
            logger.info("breaker %s: %s -> %s", self.name, previous, state)
        _count("BreakerStateChange", self.name, state)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _count(metric: str, breaker: str, state: str | None = None) -> None:
    """One EMF line per event: rare, and it needs its own dimensions."""
    namespace = getattr(get_metrics(), "namespace", None)
    with single_metric(name=metric, unit=MetricUnit.Count, value=1, namespace=namespace) as emitted:
        emitted.add_dimension(name="breaker", value=breaker)
        if state is not None:
            emitted.add_dimension(name="state", value=state)

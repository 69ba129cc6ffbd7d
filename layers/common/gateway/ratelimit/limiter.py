"""The rate limiter: GCRA in one Lua script per request, with a failure policy for Redis outages.

Environment variables read (by :meth:`RateLimiter.from_env`; the Redis client itself reads
``REDIS_URL``, ``REDIS_CLUSTER`` and ``REDIS_SOCKET_TIMEOUT_SECONDS``, see
``gateway.redis_client``):

- ``RATE_LIMIT_FAILURE_POLICY``: ``open`` (default) admits requests while Redis cannot be asked,
  ``closed`` denies them.
- ``RATE_LIMIT_REDIS_BACKOFF_SECONDS``: after a Redis failure, decide by the failure policy
  without calling Redis for this long, default 0.5 s, so that a Redis that times out costs one
  timeout per interval instead of one per request. 0 asks Redis every time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from aws_lambda_powertools.metrics import MetricUnit
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from gateway.config import env_float, env_str
from gateway.observability import get_metrics
from gateway.ratelimit.decision import Decision
from gateway.ratelimit.errors import LimiterUnavailable, PolicyError
from gateway.ratelimit.policy import Policy
from gateway.ratelimit.scripts import ACQUIRE, HIT, SETTLE
from gateway.redis_client import RedisLike, get_redis

__all__ = [
    "FailurePolicy",
    "RateLimiter",
    "client_identity",
    "ip_identity",
    "limit_key",
]

logger = logging.getLogger(__name__)

FailurePolicy = Literal["open", "closed"]
_FAILURE_POLICIES: tuple[FailurePolicy, ...] = ("open", "closed")

# Metric names, as the operators' dashboards know them.
METRIC_LIMITED = "RateLimited"
METRIC_DEGRADED = "RateLimitDegraded"

# What a Redis outage looks like from redis-py: connection refused or reset, a timeout, a
# cluster without a shard for the slot, a server refusing the script (OOM, READONLY, BUSY).
_REDIS_TROUBLE = (RedisError, RedisClusterException, OSError)


def limit_key(route_group: str, identity: str) -> str:
    """The key of ``identity``'s bucket in ``route_group``, e.g. ``{tickets:user:u-1}``.

    The whole key is one hash tag, so a route group's buckets spread over a cluster's shards
    while each request still touches one slot. Pass :func:`client_identity`'s answer as
    ``identity``; the limiter adds its prefix (``rl:``).
    """
    if not route_group or not identity:
        raise PolicyError("a rate-limit key needs a route group and an identity")
    return f"{{{route_group}:{identity}}}"


def ip_identity(source_ip: str) -> str:
    """The address a client is limited by: IPv4 as is, IPv6 by its /64 network.

    One IPv6 subscriber commonly holds a whole /64, so limiting single IPv6 addresses would give
    a client 2**64 buckets. An IPv4-mapped IPv6 address counts as the IPv4 one. Something that is
    no IP address at all is kept verbatim rather than refused: it still gets a bucket of its own.
    """
    text = source_ip.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_identity(user_id: str | None, source_ip: str) -> str:
    """Who a request counts against: ``user:<id>`` on protected routes, else ``ip:<address>``.

    ``source_ip`` must be API Gateway's ``requestContext.http.sourceIp``, never a header a
    client can write (``X-Forwarded-For``).
    """
    if user_id:
        return f"user:{user_id}"
    return f"ip:{ip_identity(source_ip)}"


@dataclass(frozen=True)
class Bucket:
    """One bucket for one script call: its full key, its policy, and what the request costs."""

    key: str
    policy: Policy
    cost: int = 1
    skip_when_trusted: bool = False


@dataclass(frozen=True)
class Outcome:
    """What the acquire script said about one bucket: ``state`` 1 admits, 0 denies, 2 skipped."""

    bucket: Bucket
    state: int
    owed_us: int


class RateLimiter:
    """Decides, with one atomic Redis call per request, whether a key may spend its quota.

    ``client`` is a ``redis.Redis`` or ``RedisCluster``; None takes the process's client from
    :func:`gateway.redis_client.get_redis` on first use. :meth:`hit` never raises for Redis
    trouble: it applies ``failure_policy``, logs a WARNING and counts ``RateLimitDegraded``.
    """

    def __init__(
        self,
        client: RedisLike | None = None,
        *,
        failure_policy: FailurePolicy = "open",
        prefix: str = "rl:",
        backoff_seconds: float = 0.5,
    ) -> None:
        self.failure_policy = check_failure_policy(failure_policy)
        if backoff_seconds < 0:
            raise PolicyError("backoff_seconds must not be negative")
        self.prefix = prefix
        self.backoff_seconds = backoff_seconds
        self._client = client
        self._lock = threading.Lock()
        self._failed_until = 0.0
        self._failing = False

    @classmethod
    def from_env(cls, client: RedisLike | None = None, *, prefix: str = "rl:") -> RateLimiter:
        """A limiter configured by ``RATE_LIMIT_FAILURE_POLICY`` and the backoff variable."""
        return cls(
            client,
            failure_policy=failure_policy_from_env("RATE_LIMIT_FAILURE_POLICY", "open"),
            prefix=prefix,
            backoff_seconds=env_float("RATE_LIMIT_REDIS_BACKOFF_SECONDS", 0.5),
        )

    def hit(self, key: str, policy: Policy, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``key``'s quota under ``policy``, if it has them.

        A denied request spends nothing. ``cost`` 0 only reads the quota. A ``key`` from
        :func:`limit_key` keeps the call on one cluster slot.
        """
        if isinstance(cost, bool) or not isinstance(cost, int) or not 0 <= cost <= policy.limit:
            raise PolicyError(f"cost must be an integer from 0 to the limit {policy.limit}")

        try:
            reply = int(self._run(_HIT, [self.prefix + key], policy.script_args(cost)))
        except LimiterUnavailable:
            return self.degraded(policy, self.failure_policy)

        if reply < 0:
            count(METRIC_LIMITED)
            return decide(policy, False, -1 - reply, cost)
        return decide(policy, True, reply, cost)

    def acquire(
        self, buckets: Sequence[Bucket], trust_key: str | None = None
    ) -> tuple[bool, list[Outcome]]:
        """Run GCRA over ``buckets`` at once, all or nothing; raise :class:`LimiterUnavailable`.

        Every key (``trust_key`` too) must share one hash tag. A bucket with
        ``skip_when_trusted`` is left alone while ``trust_key`` exists.
        """
        keys = [bucket.key for bucket in buckets]
        args: list[str | int] = [len(buckets)]
        for bucket in buckets:
            args += [
                bucket.policy.interval_us,
                bucket.policy.limit,
                bucket.cost,
                1 if bucket.skip_when_trusted else 0,
            ]
        if trust_key is not None:
            keys.append(trust_key)

        reply = cast(list[int], self._run(_ACQUIRE, keys, args))
        outcomes = [
            Outcome(bucket, int(reply[1 + 2 * i]), int(reply[2 + 2 * i]))
            for i, bucket in enumerate(buckets)
        ]
        return bool(reply[0]), outcomes

    def settle(
        self,
        buckets: Sequence[tuple[Bucket, Literal["clear", "refund"]]],
        trust_key: str,
        trust_seconds: int = 0,
    ) -> bool:
        """Give back or clear what :meth:`acquire` took; mark ``trust_key`` if ``trust_seconds``.

        Returns whether ``trust_key`` existed before. Raises :class:`LimiterUnavailable`.
        """
        keys = [bucket.key for bucket, _ in buckets] + [trust_key]
        args: list[str | int] = [len(buckets), trust_seconds]
        for bucket, action in buckets:
            args += [
                action,
                bucket.policy.interval_us,
                bucket.cost,
                1 if bucket.skip_when_trusted else 0,
            ]
        return bool(self._run(_SETTLE, keys, args))

    def degraded(self, policy: Policy, failure_policy: FailurePolicy) -> Decision:
        """The decision when Redis cannot be asked, counted as ``RateLimitDegraded``.

        Fail closed tells the client to come back after one unit's interval (at least 1 s): the
        soonest an answer from a healthy Redis could have changed.
        """
        count(METRIC_DEGRADED)
        if failure_policy == "open":
            return Decision(True, policy.limit, policy.limit, 0.0, 0.0, policy, degraded=True)
        count(METRIC_LIMITED)
        wait = policy.interval_us / 1_000_000
        return Decision(False, policy.limit, 0, wait, wait, policy, degraded=True)

    def _run(self, script: _Script, keys: list[str], args: Sequence[str | int | bytes]) -> Any:
        if self._failed_until and time.monotonic() < self._failed_until:
            logger.debug("rate limiter: Redis failed recently, deciding by the failure policy")
            raise LimiterUnavailable("Redis failed recently; not asked again yet")

        try:
            client = self._client or self._resolve_client()
            reply = script.run(client, keys, args)
        except _REDIS_TROUBLE as exc:
            self._failing = True
            self._failed_until = time.monotonic() + self.backoff_seconds
            logger.warning(
                "rate limiter: Redis unavailable (%s: %s); failure policy %r decides for %.2f s",
                type(exc).__name__,
                exc,
                self.failure_policy,
                self.backoff_seconds,
            )
            raise LimiterUnavailable(str(exc)) from exc

        if self._failing:
            self._failing = False
            self._failed_until = 0.0
            logger.info("rate limiter: Redis answers again")
        return reply

    def _resolve_client(self) -> RedisLike:
        # get_redis builds a cluster client by asking the cluster for its slots, which fails
        # when the cluster is down: it runs here, inside the caller's failure handling.
        with self._lock:
            if self._client is None:
                self._client = get_redis()
            return self._client


class _Script:
    """A Lua script run by its SHA1 (EVALSHA), loaded again when Redis answers NOSCRIPT.

    Redis forgets scripts on restart, on failover to a replica that never saw SCRIPT LOAD, and
    on SCRIPT FLUSH; the first call after that pays one SCRIPT LOAD (sent to every primary of a
    cluster) and one retry.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def run(self, client: RedisLike, keys: list[str], args: Sequence[str | int | bytes]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.text)
            return client.evalsha(self.sha, len(keys), *keys, *args)


_HIT = _Script(HIT)
_ACQUIRE = _Script(ACQUIRE)
_SETTLE = _Script(SETTLE)


def check_failure_policy(value: str) -> FailurePolicy:
    """Return ``value`` as a failure policy, or raise :class:`PolicyError`."""
    for known in _FAILURE_POLICIES:
        if value == known:
            return known
    raise PolicyError(f"failure policy must be 'open' or 'closed', got {value!r}")


def failure_policy_from_env(variable: str, default: FailurePolicy) -> FailurePolicy:
    """The failure policy in ``variable`` (any letter case), else ``default``."""
    value = env_str(variable, default)
    assert value is not None
    try:
        return check_failure_policy(value.strip().lower())
    except PolicyError as exc:
        raise PolicyError(f"{variable}: {exc}") from exc


def to_decision(outcome: Outcome) -> Decision:
    """Turn the acquire script's figures for one bucket into a :class:`Decision`."""
    return decide(outcome.bucket.policy, outcome.state != 0, outcome.owed_us, outcome.bucket.cost)


def decide(policy: Policy, allowed: bool, owed: int, cost: int) -> Decision:
    """The decision for a bucket that the script says owes ``owed`` microseconds."""
    interval = policy.interval_us
    remaining = min(policy.limit, max(0, (policy.tolerance_us - owed) // interval))

    # The draft's t: how long until ``remaining`` grows by one unit.
    reset = owed - (policy.limit - remaining - 1) * interval if remaining < policy.limit else 0
    retry = 0 if allowed else owed + interval * cost - policy.tolerance_us
    return Decision(
        allowed=allowed,
        limit=policy.limit,
        remaining=remaining,
        reset_after=max(0, reset) / 1_000_000,
        retry_after=max(0, retry) / 1_000_000,
        policy=policy,
    )


def count(metric: str) -> None:
    """Add one to ``metric`` in the function's EMF metrics."""
    get_metrics().add_metric(name=metric, unit=MetricUnit.Count, value=1)

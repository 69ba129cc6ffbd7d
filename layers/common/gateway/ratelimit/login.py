"""Login protection for ``POST /auth/login``: brute force is stopped, the account owner is not.

Four buckets, all GCRA, all in one script call:

- ``per_ip``: every attempt from one address (IPv6: its /64), whatever the outcome.
- ``per_ip_failures``: failed attempts from one address over all usernames (password spraying).
- ``per_user_failures``: failed attempts on one username *from one address*. Keyed on the pair,
  so somebody guessing Alice's password from elsewhere never uses up Alice's own attempts.
- ``per_user_global_failures``: failed attempts on one username from every address, which stops
  a botnet guessing one account from many addresses. It applies only to addresses the username
  has not logged in from lately (the trust marker, ``trust_seconds``), so Alice at her usual
  address still gets in while her account is under attack.

A failure is counted when the attempt is admitted, before the Auth service answers: :meth:`check`
takes one unit from each failure bucket, and :meth:`record` gives it back unless the answer was
401. Counting afterwards would let a burst of parallel guesses all pass the check before the
first failure is written. A successful login clears the (username, address) bucket and marks
the address as trusted for the username.

Environment variables read by :meth:`LoginGuard.from_env` (policies as ``<limit>/<period>``):

- ``LOGIN_PER_IP``, default ``30/60``
- ``LOGIN_PER_IP_FAILURES``, default ``50/1h``
- ``LOGIN_PER_USER_FAILURES``, default ``5/15m``
- ``LOGIN_PER_USER_GLOBAL_FAILURES``, default ``100/1h``; ``off`` disables it
- ``LOGIN_TRUST_SECONDS``, default 2592000 (30 days); 0 trusts no address
- ``LOGIN_FAILURE_POLICY``: ``open`` or ``closed`` while Redis is unreachable; default: the
  limiter's (``RATE_LIMIT_FAILURE_POLICY``)
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from typing import Literal

from gateway.config import env_int, env_str
from gateway.ratelimit.decision import Decision
from gateway.ratelimit.errors import LimiterUnavailable, PolicyError
from gateway.ratelimit.limiter import (
    METRIC_DEGRADED,
    METRIC_LIMITED,
    Bucket,
    FailurePolicy,
    Outcome,
    RateLimiter,
    check_failure_policy,
    count,
    failure_policy_from_env,
    ip_identity,
    to_decision,
)
from gateway.ratelimit.policy import Policy

__all__ = ["LoginGuard"]

logger = logging.getLogger(__name__)

DEFAULT_TRUST_SECONDS = 30 * 86400
_OFF = {"off", "none", "0", "false"}


def username_digest(username: object) -> str | None:
    """A fixed-length stand-in for a username in Redis keys, or None for no username.

    Usernames are compared as NFKC, case-folded and stripped, so that ``Alice`` and ``alice ``
    share their counters: a guesser gains nothing by varying case. Hashing keeps raw usernames
    and their odd characters out of key names. Anything but a string (a login body whose
    ``username`` is a number or a list) counts as no username: the address limits still apply.
    """
    if not isinstance(username, str):
        return None
    normal = unicodedata.normalize("NFKC", username).casefold().strip()
    if not normal:
        return None
    return hashlib.blake2b(normal.encode("utf-8"), digest_size=16).hexdigest()


class LoginGuard:
    """Limits login attempts per address and failed ones per username; see the module docstring.

    Call :meth:`check` before forwarding ``POST /auth/login``; forward only if it allows, then
    call :meth:`record` with the Auth service's status (or the gateway's own 502/504).
    """

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        per_ip: Policy,
        per_user_failures: Policy,
        per_ip_failures: Policy,
        per_user_global_failures: Policy | None = None,
        trust_seconds: int = DEFAULT_TRUST_SECONDS,
        failure_policy: FailurePolicy | None = None,
        scope: str = "login",
    ) -> None:
        if trust_seconds < 0:
            raise PolicyError("trust_seconds must not be negative")
        self.limiter = limiter
        self.per_ip = per_ip
        self.per_user_failures = per_user_failures
        self.per_ip_failures = per_ip_failures
        self.per_user_global_failures = per_user_global_failures
        self.trust_seconds = trust_seconds
        self.failure_policy = check_failure_policy(failure_policy or limiter.failure_policy)
        # One hash tag for every login key: a request's buckets span an address and a username,
        # and only a shared tag keeps such a script on one cluster slot (see docs/ratelimit.md).
        self._tag = f"{limiter.prefix}{{{scope}}}"

    @classmethod
    def from_env(cls, limiter: RateLimiter) -> LoginGuard:
        """A guard configured by the ``LOGIN_*`` variables (see the module docstring)."""
        global_spec = env_str("LOGIN_PER_USER_GLOBAL_FAILURES", "100/1h")
        assert global_spec is not None
        global_policy = None
        if global_spec.strip().lower() not in _OFF:
            global_policy = Policy.from_env(
                "login-user-global-failures", global_spec, variable="LOGIN_PER_USER_GLOBAL_FAILURES"
            )
        trust_seconds = env_int("LOGIN_TRUST_SECONDS", DEFAULT_TRUST_SECONDS)
        if trust_seconds < 0:
            raise PolicyError(f"LOGIN_TRUST_SECONDS must not be negative, got {trust_seconds}")
        return cls(
            limiter,
            per_ip=Policy.from_env("login-ip", variable="LOGIN_PER_IP", default="30/60"),
            per_ip_failures=Policy.from_env(
                "login-ip-failures", variable="LOGIN_PER_IP_FAILURES", default="50/1h"
            ),
            per_user_failures=Policy.from_env(
                "login-user-failures", variable="LOGIN_PER_USER_FAILURES", default="5/15m"
            ),
            per_user_global_failures=global_policy,
            trust_seconds=trust_seconds,
            failure_policy=failure_policy_from_env("LOGIN_FAILURE_POLICY", limiter.failure_policy),
        )

    def check(self, username: str | None, ip: str) -> Decision:
        """May this attempt reach the Auth service? Reserves one failure in each failure bucket.

        Returns the binding decision: when denied, the bucket that makes the client wait
        longest; when allowed, the one with the smallest share of its quota left. Never raises
        for Redis trouble.
        """
        user = username_digest(username)
        address = ip_identity(ip)
        buckets = [Bucket(f"{self._tag}:ip:{address}", self.per_ip)]
        buckets += [bucket for bucket, _ in self._failure_buckets(user, address)]

        try:
            admitted, outcomes = self.limiter.acquire(buckets, self._trust_key(user, address))
        except LimiterUnavailable:
            return self.limiter.degraded(self.per_ip, self.failure_policy)

        if not admitted:
            count(METRIC_LIMITED)
            denied = [to_decision(outcome) for outcome in outcomes if outcome.state == 0]
            binding = max(denied, key=lambda decision: decision.retry_after)
            logger.info("login attempt refused by %s", binding.policy.name)
            return binding
        return _tightest(outcomes)

    def record(
        self, username: str | None, ip: str, status: int, *, check: Decision | None = None
    ) -> None:
        """Settle an attempt :meth:`check` admitted, given the status its client received.

        401 keeps the reserved failures. Any other status gives them back; a 2xx also clears
        the (username, address) failures and trusts the address for the username. Pass the
        ``check`` decision when you have it: a denied or degraded check reserved nothing, so
        nothing is given back. Never raises for Redis trouble.
        """
        if status == 401:
            logger.debug("login failure kept on its buckets")
            return
        if check is not None and (check.degraded or not check.allowed):
            return

        user = username_digest(username)
        address = ip_identity(ip)
        success = 200 <= status < 300
        settle: list[tuple[Bucket, Literal["clear", "refund"]]] = [
            (bucket, "clear" if success and pair else "refund")
            for bucket, pair in self._failure_buckets(user, address)
        ]
        trust_key = self._trust_key(user, address) or f"{self._tag}:trust:-"
        trust_seconds = self.trust_seconds if success and user is not None else 0

        try:
            self.limiter.settle(settle, trust_key, trust_seconds)
        except LimiterUnavailable:
            # The reserved failures stay counted until they expire: the safe side.
            count(METRIC_DEGRADED)

    def _failure_buckets(self, user: str | None, address: str) -> list[tuple[Bucket, bool]]:
        """The failure buckets an attempt touches, each flagged True if it is the pair's."""
        buckets = [(Bucket(f"{self._tag}:ipf:{address}", self.per_ip_failures), False)]
        if user is None:
            return buckets
        buckets.append((Bucket(f"{self._tag}:uf:{user}:{address}", self.per_user_failures), True))
        if self.per_user_global_failures is not None:
            key = f"{self._tag}:ug:{user}"
            buckets.append(
                (Bucket(key, self.per_user_global_failures, skip_when_trusted=True), False)
            )
        return buckets

    def _trust_key(self, user: str | None, address: str) -> str | None:
        if user is None or self.trust_seconds == 0:
            return None
        return f"{self._tag}:trust:{user}:{address}"


def _tightest(outcomes: list[Outcome]) -> Decision:
    """The admitted decision with the smallest share of its quota left, the first on a tie."""
    decisions = [to_decision(outcome) for outcome in outcomes if outcome.state == 1]
    return min(decisions, key=lambda decision: decision.remaining / decision.limit)

"""A limiter's answer for one request, and the response headers that tell the client about it.

The headers follow draft-ietf-httpapi-ratelimit-headers-10: ``RateLimit-Policy`` names the policy
with its quota ``q`` and window ``w``; ``RateLimit`` gives the remaining units ``r`` and the
seconds ``t`` until more quota comes back; a denied request also gets ``Retry-After`` (RFC 9110,
section 10.2.3), never earlier than ``t`` as the draft's section 6 asks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.ratelimit.policy import Policy

__all__ = ["Decision", "rate_limit_headers"]


@dataclass(frozen=True)
class Decision:
    """Whether one request may go on, and what is left of its quota.

    ``reset_after`` is the draft's ``t``: seconds until at least one more unit is available
    (0 when the quota is full). ``retry_after`` is 0 when allowed, else the seconds until the same
    request would be admitted. ``degraded`` is true when Redis could not be asked and the failure
    policy decided; ``remaining`` is then unknown and reported as the full ``limit`` (fail open)
    or 0 (fail closed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    policy: Policy
    degraded: bool = False

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` in whole seconds: at least 1, and never before the reset (``t``)."""
        return max(1, math.ceil(self.retry_after), math.ceil(self.reset_after))

    def policy_item(self) -> str:
        """This policy as one item of ``RateLimit-Policy``: ``"name";q=100;w=60``."""
        return f'"{self.policy.name}";q={self.limit};w={self.policy.window_seconds}'

    def limit_item(self) -> str | None:
        """This decision as one item of ``RateLimit``, or None when the remaining quota is unknown.

        A fail-open decision knows nothing about the quota, and the draft lets a server leave the
        field out rather than state a guess.
        """
        if self.degraded and self.allowed:
            return None
        item = f'"{self.policy.name}";r={max(0, self.remaining)}'
        reset = math.ceil(self.reset_after)
        if not self.allowed:
            reset = max(reset, self.retry_after_seconds)
        if reset > 0:
            item += f";t={reset}"
        return item

    def headers(self) -> dict[str, str]:
        """``RateLimit-Policy`` and ``RateLimit``, plus ``Retry-After`` when denied."""
        return rate_limit_headers([self])


def rate_limit_headers(decisions: Iterable[Decision]) -> dict[str, str]:
    """The headers for several policies applied to one request (e.g. route group and login).

    Items are joined into one list per field, as the draft allows; ``Retry-After`` is the latest
    of the denied decisions', since the request can pass only when every policy admits it.
    """
    policies: list[str] = []
    limits: list[str] = []
    retry: int | None = None
    for decision in decisions:
        policies.append(decision.policy_item())
        item = decision.limit_item()
        if item is not None:
            limits.append(item)
        if not decision.allowed:
            retry = max(retry or 0, decision.retry_after_seconds)

    headers: dict[str, str] = {}
    if policies:
        headers["RateLimit-Policy"] = ", ".join(policies)
    if limits:
        headers["RateLimit"] = ", ".join(limits)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return headers

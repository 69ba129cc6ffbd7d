"""Rate limiting for the proxied routes, and login protection, decided in Redis.

One Lua script per request runs GCRA (the generic cell rate algorithm) on the Redis server's
clock; see ``docs/ratelimit.md`` for the design, the settings and the figures.

Exceptions::

    RateLimitError                   base of everything this package raises
    ├── PolicyError (ValueError)     a policy spec, name or argument that cannot be used
    └── LimiterUnavailable           Redis could not decide (internal: ``hit``, ``check`` and
                                     ``record`` turn it into the failure policy's decision)

Typical use in a handler::

    limiter = RateLimiter.from_env()            # once per warm function
    policy = Policy.from_env("tickets")         # RATE_LIMIT, default 100/60
    decision = limiter.hit(limit_key("tickets", client_identity(user_id, source_ip)), policy)
    if not decision.allowed:
        return 429 with decision.headers()
"""

from gateway.ratelimit.decision import Decision, rate_limit_headers
from gateway.ratelimit.errors import LimiterUnavailable, PolicyError, RateLimitError
from gateway.ratelimit.limiter import (
    FailurePolicy,
    RateLimiter,
    client_identity,
    ip_identity,
    limit_key,
)
from gateway.ratelimit.login import LoginGuard
from gateway.ratelimit.policy import DEFAULT_RATE_LIMIT, Policy

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "Decision",
    "FailurePolicy",
    "LimiterUnavailable",
    "LoginGuard",
    "Policy",
    "PolicyError",
    "RateLimitError",
    "RateLimiter",
    "client_identity",
    "ip_identity",
    "limit_key",
    "rate_limit_headers",
]

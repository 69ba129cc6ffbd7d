"""The rate-limit package's exceptions.

::

    RateLimitError                   base of everything this package raises
    ├── PolicyError (ValueError)     a policy spec, name or argument that cannot be used
    └── LimiterUnavailable           Redis could not decide; ``RateLimiter`` turns it into a
                                     degraded decision and never lets it reach a caller
"""

from __future__ import annotations

__all__ = ["LimiterUnavailable", "PolicyError", "RateLimitError"]


class RateLimitError(Exception):
    """Base of the rate-limit package's exceptions."""


class PolicyError(RateLimitError, ValueError):
    """A policy or an argument that cannot be used; the message says which and why."""


class LimiterUnavailable(RateLimitError):
    """Redis was unreachable, timed out or refused the script; the cause is chained."""

"""Rate-limit policies: how many requests a key may make per period.

A policy is written ``<limit>/<period>``: ``100/60`` is 100 requests per 60 seconds. The period
may carry a unit, ``s`` (the default), ``m``, ``h`` or ``d``: ``5/15m`` is 5 per 15 minutes.

Environment variables read (by :meth:`Policy.from_env`):

- ``RATE_LIMIT``: the route group's policy, default ``100/60``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

from gateway.config import env_str
from gateway.ratelimit.errors import PolicyError

__all__ = ["DEFAULT_RATE_LIMIT", "Policy"]

DEFAULT_RATE_LIMIT = "100/60"

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# A policy's name travels in the RateLimit headers as a structured-field String (RFC 9651):
# keeping to this alphabet means it never needs escaping and never smuggles a header delimiter.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# One year bounds the state's expiry and keeps microsecond arithmetic far below 2**53.
_MAX_PERIOD_SECONDS = 366 * 86400
_MAX_LIMIT = 1_000_000


@dataclass(frozen=True)
class Policy:
    """At most ``limit`` units at once, refilled evenly over ``period_seconds``.

    The limiter runs GCRA: a key that used nothing may spend the whole ``limit`` at once, and a
    unit comes back every ``period_seconds / limit``.
    """

    name: str
    limit: int
    period_seconds: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PolicyError(
                f"policy name {self.name!r} must be 1-64 characters of letters, digits, '.', "
                "'_', ':' or '-', starting with a letter or digit"
            )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise PolicyError(f"policy {self.name!r}: limit must be an integer")
        if not 1 <= self.limit <= _MAX_LIMIT:
            raise PolicyError(f"policy {self.name!r}: limit must be 1 to {_MAX_LIMIT}")
        if not isinstance(self.period_seconds, int | float) or not math.isfinite(
            self.period_seconds
        ):
            raise PolicyError(f"policy {self.name!r}: period must be a finite number of seconds")
        if not 0 < self.period_seconds <= _MAX_PERIOD_SECONDS:
            raise PolicyError(
                f"policy {self.name!r}: period must be above 0 and at most {_MAX_PERIOD_SECONDS} s"
            )
        if self.period_seconds * 1_000_000 < self.limit:
            raise PolicyError(f"policy {self.name!r}: more than one unit per microsecond")

    @classmethod
    def parse(cls, spec: str, name: str) -> Policy:
        """Read ``<limit>/<period>[s|m|h|d]``, e.g. ``100/60`` or ``5/15m``; raise on junk."""
        if not isinstance(spec, str):
            raise PolicyError(f"policy {name!r}: expected a string like '100/60', got {spec!r}")
        match = _SPEC.match(spec)
        if match is None:
            raise PolicyError(
                f"policy {name!r}: {spec!r} is not '<limit>/<period>' (e.g. '100/60' or '5/15m')"
            )
        limit, period, unit = match.groups()
        return cls(name, int(limit), float(period) * _UNIT_SECONDS[unit])

    @classmethod
    def from_env(
        cls,
        name: str,
        spec: str | None = None,
        *,
        variable: str = "RATE_LIMIT",
        default: str = DEFAULT_RATE_LIMIT,
    ) -> Policy:
        """The policy given as ``spec``, else in ``variable`` (``RATE_LIMIT``), else ``default``.

        A malformed variable raises :class:`PolicyError` naming the variable, so that a function
        with a bad setting fails when it starts rather than on some request.
        """
        resolved = env_str(variable, default, spec)
        assert resolved is not None
        try:
            return cls.parse(resolved, name)
        except PolicyError as exc:
            raise PolicyError(f"{variable}: {exc}") from exc

    @cached_property
    def interval_us(self) -> int:
        """Microseconds for one unit to come back (GCRA's emission interval), rounded up.

        Rounding up keeps every figure in the script an integer, so no float error can admit an
        extra request; the cost is a period longer by at most ``limit`` microseconds.
        """
        return math.ceil(self.period_seconds * 1_000_000 / self.limit)

    def script_args(self, cost: int) -> tuple[int, int]:
        """The single-bucket script's arguments for a request costing ``cost``."""
        return self.interval_us * cost, self.tolerance_us

    @cached_property
    def tolerance_us(self) -> int:
        """How far ahead of now a bucket's TAT may run: ``limit`` intervals (the burst)."""
        return self.interval_us * self.limit

    @property
    def window_seconds(self) -> int:
        """The period as the whole seconds the ``w`` parameter of RateLimit-Policy carries."""
        return max(1, math.ceil(self.period_seconds))

    def __str__(self) -> str:
        return f"{self.name} {self.limit}/{self.period_seconds:g}s"

"""Errors of the breaker package.

::

    BreakerError          base of everything this package raises
    └── CircuitOpen       the breaker rejects the call; ``retry_after`` says for how long

A Redis failure is never raised to the caller: the breaker falls back to its per-instance state.
"""

from __future__ import annotations

__all__ = ["BreakerError", "CircuitOpen"]


class BreakerError(Exception):
    """Base of the package's errors."""


class CircuitOpen(BreakerError):
    """The upstream behind breaker ``name`` is failing; try again in ``retry_after`` seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open, retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after

"""Circuit breaking for any upstream: closed, open and half-open, shared through Redis.

Use::

    permit = breaker.acquire()        # raises CircuitOpen (with retry_after) while open
    try:
        answer = call_the_upstream()
    except UpstreamError:
        breaker.record(permit, success=False)
        raise
    breaker.record(permit, success=True)

The error tree is in :mod:`gateway.breaker.errors`, the state machine in
:mod:`gateway.breaker.state`.
"""

from gateway.breaker.breaker import CircuitBreaker, Permit
from gateway.breaker.errors import BreakerError, CircuitOpen
from gateway.breaker.state import CLOSED, HALF_OPEN, OPEN

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "BreakerError", "CircuitBreaker", "CircuitOpen", "Permit"]

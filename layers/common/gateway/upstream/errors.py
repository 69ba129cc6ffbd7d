"""Errors of the upstream package, each mapped to the status a client receives.

::

    UpstreamError                 base of everything this package raises
    ├── RequestRejected           400: the client's request cannot be forwarded as it is
    │   └── PathRejected          400: the path could leave its route group or is malformed
    ├── UpstreamTimeout           504: no complete answer before the deadline
    └── UpstreamUnavailable       502: refused, reset, closed early, or not valid HTTP
        └── ResponseTooLarge      502: the answer would not fit a Lambda response

Messages name the upstream for the logs; clients only ever get API Gateway's short bodies.
"""

from __future__ import annotations

__all__ = [
    "PathRejected",
    "RequestRejected",
    "ResponseTooLarge",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class UpstreamError(Exception):
    """Base of the package's errors; ``status`` is what the gateway answers a client."""

    status = 502
    client_message = "Bad Gateway"


class RequestRejected(UpstreamError):
    """The client's request is malformed: a body that is not valid base64, a bad header."""

    status = 400
    client_message = "Bad Request"


class PathRejected(RequestRejected):
    """The request path is malformed or would resolve outside its route group."""


class UpstreamTimeout(UpstreamError):
    """Connecting, sending and reading together took longer than the total timeout."""

    status = 504
    client_message = "Gateway Timeout"


class UpstreamUnavailable(UpstreamError):
    """The connection was refused or reset, or the upstream closed it before a full answer."""


class ResponseTooLarge(UpstreamUnavailable):
    """The upstream's body is larger than the gateway can hand back through Lambda."""

"""Calls from the gateway to its upstreams: a pooled client with one total timeout, the headers
that may cross, and the path normalising that keeps a request inside its route group.

The error tree is in :mod:`gateway.upstream.errors`.
"""

from gateway.upstream.client import (
    DEFAULT_MAX_BODY_BYTES,
    ConnectionPool,
    UpstreamClient,
    UpstreamResponse,
    default_pool,
)
from gateway.upstream.errors import (
    PathRejected,
    ResponseTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.headers import forward_request_headers, forward_response_headers
from gateway.upstream.paths import normalise_path

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ConnectionPool",
    "PathRejected",
    "ResponseTooLarge",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "default_pool",
    "forward_request_headers",
    "forward_response_headers",
    "normalise_path",
]

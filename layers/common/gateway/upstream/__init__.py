"""Calls from the gateway to its upstreams: a pooled client with one total timeout, the headers
that may cross, and the path normalising that keeps a request inside its route group.

The error tree is in :mod:`gateway.upstream.errors`.
"""

from gateway.upstream.client import (
    DEFAULT_MAX_BODY_BYTES,
    ConnectionPool,
    PendingResponse,
    UpstreamClient,
    UpstreamResponse,
    default_pool,
)
from gateway.upstream.errors import (
    PathRejected,
    RequestRejected,
    ResponseTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.headers import forward_request_headers, forward_response_headers
from gateway.upstream.http_api import (
    Caller,
    client_headers,
    error_result,
    json_result,
    request_body,
    request_path,
    upstream_result,
)
from gateway.upstream.paths import normalise_path

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Caller",
    "ConnectionPool",
    "PathRejected",
    "PendingResponse",
    "RequestRejected",
    "ResponseTooLarge",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "client_headers",
    "default_pool",
    "error_result",
    "forward_request_headers",
    "forward_response_headers",
    "json_result",
    "normalise_path",
    "request_body",
    "request_path",
    "upstream_result",
]

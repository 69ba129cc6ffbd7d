"""An HTTP API's CORS configuration applied as API Gateway applies it, without I/O.

From the HTTP API developer guide ("Configuring CORS for an HTTP API"): with a CorsConfiguration,
API Gateway answers every preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) itself, with no route or function involved, and ignores the
CORS headers a function returns, adding its own to responses for allowed origins only. A
preflight from an origin, method or header the configuration does not allow gets a 204 with no
``Access-Control-*`` headers, which the browser reads as a refusal.
"""

from __future__ import annotations

import fnmatch

from localgw.events import HttpRequest, HttpResponse
from localgw.template import Cors

__all__ = ["apply_cors", "is_preflight", "preflight_response"]


def is_preflight(request: HttpRequest) -> bool:
    return (
        request.method == "OPTIONS"
        and request.header("origin") is not None
        and request.header("access-control-request-method") is not None
    )


def _origin_allowed(cors: Cors, origin: str) -> bool:
    origin = origin.lower()
    return any(
        allowed == "*" or fnmatch.fnmatchcase(origin, allowed.lower())
        for allowed in cors.allow_origins
    )


def _allow_origin_value(cors: Cors, origin: str) -> str:
    if "*" in cors.allow_origins and not cors.allow_credentials:
        return "*"
    return origin


def preflight_response(cors: Cors, request: HttpRequest) -> HttpResponse:
    """The answer to a preflight: 204, with CORS headers only when everything asked is allowed."""
    origin = request.header("origin") or ""
    method = (request.header("access-control-request-method") or "").upper()
    asked = [
        name.strip().lower()
        for name in (request.header("access-control-request-headers") or "").split(",")
        if name.strip()
    ]
    response = HttpResponse(204)
    methods_ok = "*" in cors.allow_methods or method in cors.allow_methods
    headers_ok = "*" in cors.allow_headers or all(name in cors.allow_headers for name in asked)
    if not (_origin_allowed(cors, origin) and methods_ok and headers_ok):
        return response
    response.headers.append(("access-control-allow-origin", _allow_origin_value(cors, origin)))
    if cors.allow_credentials:
        response.headers.append(("access-control-allow-credentials", "true"))
    allow_methods = [method] if "*" in cors.allow_methods else list(cors.allow_methods)
    response.headers.append(("access-control-allow-methods", ",".join(allow_methods)))
    if asked:
        allow_headers = asked if "*" in cors.allow_headers else list(cors.allow_headers)
        response.headers.append(("access-control-allow-headers", ",".join(allow_headers)))
    if cors.max_age is not None:
        response.headers.append(("access-control-max-age", str(cors.max_age)))
    response.headers.append(("vary", "origin"))
    return response


def apply_cors(cors: Cors, request: HttpRequest, response: HttpResponse) -> None:
    """Replace a response's CORS headers by the configuration's, for an allowed origin only."""
    response.headers = [
        (name, value)
        for name, value in response.headers
        if not name.lower().startswith("access-control-")
    ]
    origin = request.header("origin")
    if origin is None or not _origin_allowed(cors, origin):
        return
    response.headers.append(("access-control-allow-origin", _allow_origin_value(cors, origin)))
    if cors.allow_credentials:
        response.headers.append(("access-control-allow-credentials", "true"))
    if cors.expose_headers:
        response.headers.append(("access-control-expose-headers", ",".join(cors.expose_headers)))
    if not any(name.lower() == "vary" for name, _ in response.headers):
        response.headers.append(("vary", "origin"))

"""API Gateway HTTP API (payload format 2.0) on one side, an upstream on the other.

Reads what a route event says about the caller and the request, and shapes the results a Lambda
proxy integration returns: the upstream's answer, or one of API Gateway's own short JSON errors.
The event format is AWS's "payload format version 2.0" for HTTP API Lambda integrations: header
names in lower case, repeated headers comma-joined, the ``Cookie`` header moved into a
``cookies`` list, the authorizer's context at ``requestContext.authorizer.lambda``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.upstream.client import UpstreamResponse
from gateway.upstream.errors import RequestRejected
from gateway.upstream.headers import forward_response_headers

__all__ = [
    "Caller",
    "client_headers",
    "error_result",
    "json_result",
    "request_body",
    "request_path",
    "upstream_result",
]

Result = dict[str, Any]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Caller:
    """Who calls, per API Gateway: never per a header the client could write."""

    user_id: str | None
    roles: str
    projects: frozenset[str]
    source_ip: str
    request_id: str
    method: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Caller:
        """Read ``requestContext``: the authorizer's context, the source IP, the request id."""
        context = _mapping(event.get("requestContext"))
        http = _mapping(context.get("http"))
        claims = _mapping(_mapping(context.get("authorizer")).get("lambda"))
        user_id = claims.get("userId")
        projects = str(claims.get("projects") or "")
        return cls(
            user_id=str(user_id) if user_id not in (None, "") else None,
            roles=str(claims.get("roles") or ""),
            projects=frozenset(item.strip() for item in projects.split(",") if item.strip()),
            source_ip=str(http.get("sourceIp") or "unknown"),
            request_id=str(context.get("requestId") or ""),
            method=str(http.get("method") or "GET").upper(),
        )


def request_path(event: Mapping[str, Any]) -> str:
    """The path the client asked for, without the stage's prefix when the stage is named.

    ``rawPath`` starts with ``/<stage>`` unless the stage is ``$default``.
    """
    context = _mapping(event.get("requestContext"))
    path = str(event.get("rawPath") or _mapping(context.get("http")).get("path") or "/")
    stage = context.get("stage")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        return path[len(stage) + 1 :]
    return path


def client_headers(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The client's headers, with the ``cookies`` list joined back into one ``Cookie`` header."""
    headers = [(str(name), str(value)) for name, value in _mapping(event.get("headers")).items()]
    cookies = event.get("cookies")
    if isinstance(cookies, list) and cookies:
        headers = [(name, value) for name, value in headers if name.lower() != "cookie"]
        headers.append(("cookie", "; ".join(str(cookie) for cookie in cookies)))
    return headers


def request_body(event: Mapping[str, Any]) -> bytes | None:
    """The body as bytes, base64-decoded when API Gateway marks it so; None when absent."""
    body = event.get("body")
    if body is None:
        return None
    if not isinstance(body, str):
        raise RequestRejected("the event's body is not a string")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestRejected("the body is marked base64 but is not") from exc
    return body.encode("utf-8")


def error_result(status: int, message: str, headers: Mapping[str, str] | None = None) -> Result:
    """One of API Gateway's short JSON errors, e.g. ``{"message": "Bad Gateway"}``."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }


def json_result(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Result:
    """A 2.0 result carrying ``payload`` as compact JSON."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(payload, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def upstream_result(
    response: UpstreamResponse,
    *,
    allowed_origin: str | None,
    extra_headers: Mapping[str, str] | None = None,
) -> Result:
    """The upstream's answer as a 2.0 result: status and body unchanged, headers filtered.

    Repeated headers are comma-joined, except ``Set-Cookie``, whose values go into ``cookies``
    (a comma may occur inside one cookie's ``Expires``). A body that is not UTF-8 text is sent
    base64-encoded; API Gateway decodes it, so the client gets the upstream's bytes.
    """
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in forward_response_headers(response.headers, allowed_origin=allowed_origin):
        if name == "set-cookie":
            cookies.append(value)
        elif name in headers:
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    for name, value in (extra_headers or {}).items():
        headers[name.lower()] = value

    result: Result = {"statusCode": response.status, "headers": headers}
    if cookies:
        result["cookies"] = cookies
    try:
        result["body"] = response.body.decode("utf-8")
        result["isBase64Encoded"] = False
    except UnicodeDecodeError:
        result["body"] = base64.b64encode(response.body).decode("ascii")
        result["isBase64Encoded"] = True
    return result

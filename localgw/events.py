"""HTTP API payload format 2.0, both ways, without I/O.

:func:`build_http_event` builds the event API Gateway sends a Lambda integration, following the
format's structure in the API Gateway developer guide ("Create AWS Lambda proxy integrations for
HTTP APIs", section "Payload format version"; a copy of its example is
``events/apigw-http-v2-docs-example.json``): header names in lower case with repeated headers
joined by commas, the Cookie header moved to ``cookies``, repeated query parameters joined by
commas, ``queryStringParameters``, ``pathParameters`` and ``body`` left out when empty, and the
body base64-encoded unless it is text (a textual Content-Type, or none, and valid UTF-8).

:func:`parse_http_response` reads a function's answer as the 2.0 format does: an object with
``statusCode`` is a structured response (``headers``, ``cookies``, ``body``, ``isBase64Encoded``);
any other valid JSON (a bare string, object, number, list, null) becomes a 200 with content type
``application/json`` whose body is that JSON. An answer it cannot use raises
:class:`MalformedResponse`, which API Gateway turns into a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "MalformedResponse",
    "build_authorizer_event",
    "build_http_event",
    "error_response",
    "parse_http_response",
]

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/graphql",
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

ERROR_MESSAGES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class MalformedResponse(ValueError):
    """A function's answer is not a valid payload 2.0 response; the message says what is wrong."""


@dataclass
class HttpRequest:
    """One request as the transport parsed it; ``path`` is the raw target without the query."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The header's value (repeats joined by commas, as API Gateway joins them), or None."""
        name = name.lower()
        values = [value for key, value in self.headers if key.lower() == name]
        return ",".join(values) if values else None


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def error_response(status: int, request_id: str = "") -> HttpResponse:
    """API Gateway's own short JSON error, e.g. 404 ``{"message":"Not Found"}``."""
    body = json.dumps({"message": ERROR_MESSAGES.get(status, "Error")}, separators=(",", ":"))
    headers = [("content-type", "application/json")]
    if request_id:
        headers.append(("apigw-requestid", request_id))
    return HttpResponse(status, headers, body.encode())


_LAST_TIME: list[Any] = [-1, ""]


def _request_time(epoch: float) -> str:
    """``requestContext.time`` (``12/Mar/2020:19:03:58 +0000``), formatted once per second."""
    second = int(epoch)
    if _LAST_TIME[0] != second:
        moment = time.gmtime(second)
        month = _MONTHS[moment.tm_mon - 1]
        _LAST_TIME[:] = [second, time.strftime(f"%d/{month}/%Y:%H:%M:%S +0000", moment)]
    return str(_LAST_TIME[1])


def _is_text(content_type: str | None, body: bytes) -> bool:
    if content_type and not content_type.lower().startswith(_TEXT_TYPES):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _event_base(
    request: HttpRequest,
    *,
    route_key: str,
    path_parameters: dict[str, str],
    api_id: str,
    stage: str,
    request_id: str,
    epoch: float,
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif key in headers:
            headers[key] = f"{headers[key]},{value}"
        else:
            headers[key] = value
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = (
        f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
    )
    headers.setdefault("x-forwarded-proto", "http")
    host = headers.get("host", "localhost")
    headers.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    headers.setdefault(
        "x-amzn-trace-id", f"Root=1-{int(epoch):08x}-{request_id.replace('-', '')[:24]}"
    )
    domain = host.split(":", 1)[0]

    query: dict[str, str] = {}
    for key, value in parse_qsl(request.query, keep_blank_values=True) if request.query else ():
        query[key] = f"{query[key]},{value}" if key in query else value

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": "123456789012",
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": request.path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage,
        "time": _request_time(epoch),
        "timeEpoch": int(epoch * 1000),
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


def build_http_event(
    request: HttpRequest,
    *,
    route_key: str,
    path_parameters: dict[str, str],
    api_id: str,
    stage: str = "$default",
    request_id: str,
    authorizer_context: dict[str, Any] | None = None,
    epoch: float | None = None,
) -> dict[str, Any]:
    """The payload 2.0 event for ``request`` routed to ``route_key``."""
    event = _event_base(
        request,
        route_key=route_key,
        path_parameters=path_parameters,
        api_id=api_id,
        stage=stage,
        request_id=request_id,
        epoch=time.time() if epoch is None else epoch,
    )
    if authorizer_context is not None:
        event["requestContext"]["authorizer"] = {"lambda": authorizer_context}
    if request.body:
        if _is_text(request.header("content-type"), request.body):
            event["body"] = request.body.decode("utf-8")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def build_authorizer_event(
    route_event: dict[str, Any], *, route_arn: str, identity_source: list[str]
) -> dict[str, Any]:
    """A Lambda REQUEST authorizer's payload 2.0 event: the route's event without its body, plus
    ``type``, ``routeArn`` and ``identitySource``."""
    skip = {"version", "body", "isBase64Encoded"}
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": identity_source,
        **{key: value for key, value in route_event.items() if key not in skip},
        "requestContext": dict(route_event["requestContext"]),
    }


def parse_http_response(payload: Any) -> HttpResponse:
    """Turn a function's answer into the HTTP response API Gateway would send."""
    if not isinstance(payload, dict) or "statusCode" not in payload:
        body = json.dumps(payload, separators=(",", ":"))
        return HttpResponse(200, [("content-type", "application/json")], body.encode())
    status = _status(payload["statusCode"])
    headers: list[tuple[str, str]] = []
    for name, value in (payload.get("headers") or {}).items():
        headers.append((str(name).lower(), _header_value(name, value)))
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        if isinstance(values, list) and str(name).lower() not in {key for key, _ in headers}:
            joined = ",".join(_header_value(name, value) for value in values)
            headers.append((str(name).lower(), joined))
    cookies = payload.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies must be a list of strings")
    headers.extend(("set-cookie", str(cookie)) for cookie in cookies)
    if not any(key == "content-type" for key, _ in headers):
        headers.append(("content-type", "text/plain; charset=utf-8"))
    return HttpResponse(status, headers, _body(payload.get("body"), payload.get("isBase64Encoded")))


def _status(value: Any) -> int:
    if isinstance(value, bool):
        raise MalformedResponse(f"statusCode {value!r} is not an integer")
    try:
        status = int(value)
    except (TypeError, ValueError) as exc:
        raise MalformedResponse(f"statusCode {value!r} is not an integer") from exc
    if not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {status} is not an HTTP status")
    return status


def _header_value(name: Any, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = str(value)
        if "\r" in text or "\n" in text:
            raise MalformedResponse(f"header {name!r} holds a line break")
        return text
    raise MalformedResponse(f"header {name!r} is a {type(value).__name__}, not a string")


def _body(body: Any, is_base64: Any) -> bytes:
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponse(f"body is a {type(body).__name__}, not a string")
    if is_base64 is True or str(is_base64).lower() == "true":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedResponse("isBase64Encoded is true but body is not base64") from exc
    return body.encode("utf-8")

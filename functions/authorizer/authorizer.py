"""The gateway's Lambda authorizer: one handler for both APIs.

- HTTP API, payload format 2.0 (``version: "2.0"``, ``type: "REQUEST"``): the token is the
  ``Authorization: Bearer`` header, its name matched in any case (deployed API Gateway lowercases
  header names, ``sam local`` does not). The answer is a simple response,
  ``{"isAuthorized": bool, "context": {...}}``.
- WebSocket API ``$connect`` (``methodArn``, ``requestContext.eventType: CONNECT``): browsers cannot
  set headers on a WebSocket handshake, so the token is the ``token`` query string parameter. The
  answer is an IAM policy allowing or denying ``execute-api:Invoke`` on the ``methodArn``.

On success the context is ``userId``, ``roles`` and ``projects``, strings only. On failure the
client learns nothing (API Gateway answers 403 on its own); the log gets one JSON line with the
reason code and detail, never the token. Verification itself lives in :mod:`gateway.tokens`, whose
settings source documents the environment variables read.

Log levels: INFO for a token refused, WARNING when the verifier cannot decide (settings or key set
unavailable), ERROR with the traceback for anything unexpected, DEBUG for an allowed request
(API Gateway's access log already records each authorizer result, and a JSON line per allowed
request would cost more than the verification it reports on).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.observability import get_logger
from gateway.tokens import (
    Authenticator,
    CredentialsError,
    Identity,
    MissingTokenError,
    TokenError,
    VerifierError,
    bearer_token,
)

logger = get_logger()

_HTTP = "http"
_WEBSOCKET = "websocket"
_UNKNOWN = "unknown"

_authenticator: Authenticator | None = None


def _get_authenticator() -> Authenticator:
    # Built on the first request, not at import: reading the environment and settings belongs to
    # the invocation, where a failure is logged and answered with a deny.
    global _authenticator
    if _authenticator is None:
        _authenticator = Authenticator()
    return _authenticator


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Authorize one HTTP API request or WebSocket connection."""
    kind = _event_kind(event)
    if kind == _UNKNOWN:
        # A wiring fault, not a client's: this function serves only the two authorizers.
        logger.error(
            "not an HTTP API 2.0 or WebSocket $connect authorizer event; denying",
            extra=_request_fields(event, kind, context),
        )
        return _deny(event, kind)
    try:
        token = _http_token(event) if kind == _HTTP else _websocket_token(event)
        identity = _get_authenticator().authenticate(token)
    except TokenError as exc:
        _log_refusal(event, kind, exc, context)
        return _deny(event, kind)
    except Exception:
        logger.exception("authorizer failed; denying", extra=_request_fields(event, kind, context))
        return _deny(event, kind)

    if logger.log_level <= logging.DEBUG:
        fields = _request_fields(event, kind, context)
        logger.debug("authorization allowed", extra={**fields, "userId": identity.user_id})
    return _allow(event, kind, identity)


def _event_kind(event: Any) -> str:
    if not isinstance(event, dict):
        return _UNKNOWN
    if event.get("version") == "2.0" and event.get("type") == "REQUEST":
        return _HTTP
    request_context = event.get("requestContext")
    if (
        isinstance(event.get("methodArn"), str)
        and isinstance(request_context, dict)
        and request_context.get("eventType") == "CONNECT"
    ):
        return _WEBSOCKET
    return _UNKNOWN


def _http_token(event: dict[str, Any]) -> str:
    headers = event.get("headers")
    if not isinstance(headers, dict):
        raise MissingTokenError("the event has no headers")
    values = [
        value
        for name, value in headers.items()
        if isinstance(name, str) and name.lower() == "authorization"
    ]
    if len(values) > 1:
        raise CredentialsError("several Authorization headers")
    value = values[0] if values else None
    if value is not None and not isinstance(value, str):
        raise CredentialsError("the Authorization header is not a string")
    return bearer_token(value)


def _websocket_token(event: dict[str, Any]) -> str:
    several = event.get("multiValueQueryStringParameters")
    if isinstance(several, dict):
        tokens = several.get("token")
        if isinstance(tokens, list) and len(tokens) > 1:
            raise CredentialsError(f"token given {len(tokens)} times in the query string")
    query = event.get("queryStringParameters")
    token = query.get("token") if isinstance(query, dict) else None
    if token is not None and not isinstance(token, str):
        raise CredentialsError("the token query string parameter is not a string")
    if not token or not token.strip():
        raise MissingTokenError("no token query string parameter")
    return token.strip()


def _allow(event: dict[str, Any], kind: str, identity: Identity) -> dict[str, Any]:
    if kind == _HTTP:
        return {"isAuthorized": True, "context": identity.context()}
    return {
        "principalId": identity.user_id,
        "policyDocument": _policy("Allow", event["methodArn"]),
        "context": identity.context(),
    }


def _deny(event: Any, kind: str) -> dict[str, Any]:
    if kind == _WEBSOCKET:
        return {"principalId": "anonymous", "policyDocument": _policy("Deny", event["methodArn"])}
    return {"isAuthorized": False}


def _policy(effect: str, resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
    }


def _request_fields(event: Any, kind: str, context: Any) -> dict[str, Any]:
    """The ids and route that let a log line be matched with API Gateway's access log."""
    fields: dict[str, Any] = {"api": kind}
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        fields["lambdaRequestId"] = request_id
    if not isinstance(event, dict):
        return fields
    request_context = event.get("requestContext")
    if isinstance(request_context, dict):
        fields["requestId"] = request_context.get("requestId")
        http = request_context.get("http")
        identity = request_context.get("identity")
        source = http if isinstance(http, dict) else identity
        if isinstance(source, dict):
            fields["sourceIp"] = source.get("sourceIp")
        if kind == _WEBSOCKET:
            fields["connectionId"] = request_context.get("connectionId")
    fields["route"] = event.get("routeArn") or event.get("methodArn")
    return fields


def _log_refusal(event: Any, kind: str, error: TokenError, context: Any) -> None:
    fields = _request_fields(event, kind, context)
    fields["reason"] = error.reason
    fields["detail"] = str(error)
    if isinstance(error, VerifierError):
        if error.__cause__ is not None:
            fields["cause"] = f"{error.__cause__.__class__.__name__}: {error.__cause__}"
        logger.warning("authorization denied: verifier unavailable", extra=fields)
    else:
        logger.info("authorization denied", extra=fields)

"""The WebSocket API's routes: ``$connect``, ``$disconnect``, ``subscribe``, ``unsubscribe`` and
``$default``.

One function serves every route and dispatches on ``requestContext.routeKey``. The answers to
``subscribe``, ``unsubscribe`` and ``$default`` are route responses: the returned ``body`` goes back
to the client over its own connection, so this function never calls the Management API.

Environment: ``REDIS_URL``, ``REDIS_CLUSTER`` (through ``gateway.redis_client``),
``WS_MAX_BODY_BYTES`` (default 4096), plus the Powertools variables every function reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.config import env_int
from gateway.observability import get_logger
from gateway.redis_client import get_redis
from gateway.rooms import InvalidMessage, RoomStore, StoreUnavailable
from gateway.rooms.messages import (
    ACTIONS,
    DEFAULT_MAX_BODY_BYTES,
    allowed_projects,
    error_body,
    help_body,
    parse_message,
    project_id_of,
)

logger = get_logger()

Response = dict[str, Any]


def handler(event: dict[str, Any], context: Any) -> Response:
    """Lambda entry point (``ws_connect.handler``): serve one WebSocket route event."""
    request = event.get("requestContext") or {}
    route = request.get("routeKey")
    connection_id = request.get("connectionId")
    log = {
        "route": route,
        "connection_id": connection_id,
        "request_id": request.get("requestId"),
        "lambda_request_id": getattr(context, "aws_request_id", None),
    }
    serve = _ROUTES.get(route) if isinstance(route, str) else None
    if serve is None or not isinstance(connection_id, str) or not connection_id:
        logger.warning("event is not a WebSocket route this function serves", extra=log)
        return _answer(error_body("bad_request", "unsupported WebSocket event"), status=400)

    try:
        return serve(event, request, connection_id, log)
    except StoreUnavailable:
        logger.warning("room store unavailable", extra=log)
        return _unavailable(route)


def _connect(
    event: Mapping[str, Any], request: Mapping[str, Any], connection_id: str, log: dict[str, Any]
) -> Response:
    authorizer = request.get("authorizer") or {}
    user_id = authorizer.get("userId") or authorizer.get("principalId")
    if not isinstance(user_id, str) or not user_id:
        # The REQUEST authorizer lets no connection through without a user; if one comes anyway
        # (a route left without its authorizer), it is refused rather than recorded anonymous.
        logger.warning("connection refused: no user in the authorizer context", extra=log)
        return {"statusCode": 403}
    projects = allowed_projects(authorizer)
    connected_at = request.get("connectedAt")
    if not isinstance(connected_at, int):
        connected_at = int(time.time() * 1000)

    _store().open(connection_id, user_id=user_id, projects=projects, connected_at=connected_at)
    logger.info("connection opened", extra={**log, "user_id": user_id, "projects": len(projects)})
    return {"statusCode": 200}


def _disconnect(
    event: Mapping[str, Any], request: Mapping[str, Any], connection_id: str, log: dict[str, Any]
) -> Response:
    rooms = _store().close(connection_id)
    logger.info(
        "connection closed",
        extra={
            **log,
            "rooms_left": len(rooms),
            "disconnect_status_code": request.get("disconnectStatusCode"),
            "disconnect_reason": request.get("disconnectReason"),
        },
    )
    return {"statusCode": 200}


def _subscribe(
    event: Mapping[str, Any], request: Mapping[str, Any], connection_id: str, log: dict[str, Any]
) -> Response:
    try:
        project_id = project_id_of(_message(event))
    except InvalidMessage as exc:
        return _refuse("subscribe", exc, log)

    if project_id not in _projects_allowed(request, connection_id):
        refusal = InvalidMessage("forbidden", f"not allowed to see project {project_id}")
        return _refuse("subscribe", refusal, log, projectId=project_id)

    _store().join(connection_id, project_id)
    logger.info("subscribed", extra={**log, "project_id": project_id})
    return _answer({"type": "subscribed", "projectId": project_id})


def _unsubscribe(
    event: Mapping[str, Any], request: Mapping[str, Any], connection_id: str, log: dict[str, Any]
) -> Response:
    try:
        project_id = project_id_of(_message(event))
    except InvalidMessage as exc:
        return _refuse("unsubscribe", exc, log)

    was_member = _store().leave(connection_id, project_id)
    logger.info("unsubscribed", extra={**log, "project_id": project_id, "was_member": was_member})
    return _answer({"type": "unsubscribed", "projectId": project_id})


def _default(
    event: Mapping[str, Any], request: Mapping[str, Any], connection_id: str, log: dict[str, Any]
) -> Response:
    try:
        message = _message(event)
    except InvalidMessage as exc:
        logger.info("message refused", extra={**log, "error": exc.code})
        return _answer(help_body(exc.code, exc.message))

    action = message.get("action")
    if isinstance(action, str) and action in _MESSAGE_ROUTES:
        # API Gateway routes these itself; a front end that does not (the local emulator when
        # its template lacks a route) still gets them served.
        return _MESSAGE_ROUTES[action](event, request, connection_id, log)
    text = "action is required" if action is None else f"unknown action {str(action)[:64]!r}"
    logger.info("message refused", extra={**log, "error": "unknown_action"})
    return _answer(help_body("unknown_action", f"{text}; actions: {', '.join(ACTIONS)}"))


def _message(event: Mapping[str, Any]) -> dict[str, Any]:
    max_bytes = env_int("WS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
    return parse_message(
        event.get("body"), base64_encoded=bool(event.get("isBase64Encoded")), max_bytes=max_bytes
    )


def _projects_allowed(request: Mapping[str, Any], connection_id: str) -> frozenset[str]:
    """The token's project ids: API Gateway hands the ``$connect`` authorizer's context to every
    later route; the connection record written at ``$connect`` stands in where it is missing."""
    authorizer = request.get("authorizer")
    if isinstance(authorizer, Mapping) and "projects" in authorizer:
        return allowed_projects(authorizer)
    record = _store().get(connection_id)
    return record.projects if record is not None else frozenset()


def _refuse(action: str, exc: InvalidMessage, log: dict[str, Any], **extra: Any) -> Response:
    logger.info("message refused", extra={**log, "action": action, "error": exc.code})
    return _answer(error_body(exc.code, exc.message, action=action, **extra))


def _unavailable(route: str) -> Response:
    if route == "$connect":
        # Without a record the connection could join no room: better refused than silently deaf.
        return {"statusCode": 500}
    if route == "$disconnect":
        # API Gateway ignores this answer; the record expires and the rooms are pruned on 410.
        return {"statusCode": 200}
    return _answer(error_body("unavailable", "service temporarily unavailable, try again"))


def _answer(body: Mapping[str, Any], status: int = 200) -> Response:
    return {"statusCode": status, "body": json.dumps(body, separators=(",", ":"))}


def _store() -> RoomStore:
    return RoomStore(get_redis())


Route = Callable[[Mapping[str, Any], Mapping[str, Any], str, dict[str, Any]], Response]

_MESSAGE_ROUTES: dict[str, Route] = {"subscribe": _subscribe, "unsubscribe": _unsubscribe}
_ROUTES: dict[str, Route] = {
    "$connect": _connect,
    "$disconnect": _disconnect,
    "$default": _default,
    **_MESSAGE_ROUTES,
}

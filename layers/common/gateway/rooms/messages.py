"""What WebSocket clients send to the room routes, and what they get back.

A client sends ``{"action": "subscribe", "projectId": "p-1"}`` or the same with ``unsubscribe``.
API Gateway picks the route from ``$request.body.action``; anything it cannot route (a body that is
not JSON, no ``action``, an action it does not know) lands on ``$default``.

Every answer is a JSON object with a ``type``: ``subscribed``, ``unsubscribed``, or ``error`` with
a stable ``error`` code and a ``message`` a person can read. Answers go back as the route response
(the integration's ``body``), so no answer needs the Management API.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from gateway.rooms.errors import InvalidMessage

__all__ = [
    "ACTIONS",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_PROJECT_ID_LENGTH",
    "allowed_projects",
    "error_body",
    "help_body",
    "parse_message",
    "project_id_of",
]

ACTIONS = ("subscribe", "unsubscribe")

# A subscribe message is well under 200 bytes; 4 KiB leaves room and still refuses junk early.
DEFAULT_MAX_BODY_BYTES = 4096

MAX_PROJECT_ID_LENGTH = 128


def parse_message(
    body: str | None, *, base64_encoded: bool = False, max_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> dict[str, Any]:
    """Decode a client's message body into a JSON object, or raise InvalidMessage.

    The size is checked before anything is decoded, so an oversized frame costs no parsing.
    """
    raw = (body or "").encode("utf-8")
    if len(raw) > max_bytes:
        raise InvalidMessage(
            "payload_too_large", f"message is {len(raw)} bytes; the limit is {max_bytes} bytes"
        )
    if base64_encoded:
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidMessage("invalid_json", "binary message is not valid base64") from exc
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidMessage("invalid_json", "message is not valid JSON") from exc
    if not isinstance(message, dict):
        raise InvalidMessage("invalid_message", "message must be a JSON object")
    return message


def project_id_of(message: Mapping[str, Any]) -> str:
    """The message's ``projectId``: a non-empty string of at most 128 characters, without braces
    or control characters (it becomes part of a Redis key), or InvalidMessage."""
    if "projectId" not in message:
        raise InvalidMessage("invalid_message", "projectId is required")
    project_id = message["projectId"]
    if not isinstance(project_id, str):
        raise InvalidMessage("invalid_message", "projectId must be a string")
    if not project_id or len(project_id) > MAX_PROJECT_ID_LENGTH:
        raise InvalidMessage(
            "invalid_message", f"projectId must be 1 to {MAX_PROJECT_ID_LENGTH} characters"
        )
    if any(ch in "{}," or not ch.isprintable() for ch in project_id):
        raise InvalidMessage("invalid_message", "projectId contains characters not allowed")
    return project_id


def allowed_projects(authorizer: Mapping[str, Any] | None) -> frozenset[str]:
    """The project ids the connection's token allows: the authorizer's ``projects`` context entry.

    The authorizer passes the Auth service's ``projects`` claim comma-joined (API Gateway allows
    only strings, numbers and booleans in a WebSocket authorizer context); a list is accepted too.
    """
    if not authorizer:
        return frozenset()
    raw = authorizer.get("projects")
    if isinstance(raw, str):
        items: list[Any] = raw.split(",")
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        return frozenset()
    return frozenset(item.strip() for item in items if isinstance(item, str) and item.strip())


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An ``error`` answer: stable code, readable message, plus what helps the client fix it."""
    return {"type": "error", "error": code, "message": message, **extra}


def help_body(code: str, message: str) -> dict[str, Any]:
    """An ``error`` answer that also lists the actions and an example, for ``$default``."""
    return error_body(
        code,
        message,
        actions=list(ACTIONS),
        example={"action": "subscribe", "projectId": "<project id>"},
    )

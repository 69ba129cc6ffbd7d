"""The ``@connections`` management API: post to, describe and close a live WebSocket connection.

Served by :mod:`localgw.websocket` on the WebSocket API's own host and port, at
``/@connections/{connectionId}`` with or without a leading ``/{stage}`` (boto3's
``apigatewaymanagementapi`` client, given ``endpoint_url="http://127.0.0.1:3001/dev"``, calls
``/dev/@connections/...``). Requests are not signature-checked: this is a local emulator.

Answers follow API Gateway's ``PostToConnection``, ``GetConnection`` and ``DeleteConnection``:

- ``POST`` sends the body to the client (a text frame when it is UTF-8, else binary; over 32 KB it
  is split into 32 KB frames, as API Gateway does) and answers 200 with no body; a body over
  128 KB answers 413 ``PayloadTooLargeException``;
- ``GET`` answers ``connectedAt``, ``lastActiveAt`` (ISO 8601) and ``identity``
  (``sourceIp``, ``userAgent``);
- ``DELETE`` closes the connection (its ``$disconnect`` route runs) and answers 204;
- an unknown or closed id answers 410 ``GoneException``. The error type travels in the
  ``x-amzn-ErrorType`` header and the body's ``__type``, which is where botocore's rest-json
  parser looks for it, so boto3 raises ``client.exceptions.GoneException``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import unquote

from localgw.websocket_api import MESSAGE_LIMIT_BYTES

__all__ = [
    "POSTED",
    "ConnectionGone",
    "ConnectionRegistry",
    "LiveConnection",
    "ManagementResponse",
    "handle_management",
    "management_path",
]

log = logging.getLogger(__name__)

_PATH = re.compile(r"^(?:/[^/@]+)?/@connections/(?P<id>[^/?]+)/?(?:\?.*)?$")


class ConnectionGone(Exception):
    """The connection closed while something was being sent to it."""


class LiveConnection(Protocol):
    """What the management API needs of an open connection (the transport implements it)."""

    connection_id: str
    connected_at: float
    last_active_at: float
    source_ip: str
    user_agent: str

    def post(self, data: bytes) -> None:
        """Queue ``data`` for the client at once; raise :class:`ConnectionGone` if it has gone."""

    def delete(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection from the server side with ``code``."""


class ConnectionRegistry:
    """The open connections of one WebSocket API, by id."""

    def __init__(self) -> None:
        self._connections: dict[str, LiveConnection] = {}

    def add(self, connection: LiveConnection) -> None:
        self._connections[connection.connection_id] = connection

    def discard(self, connection_id: str) -> None:
        self._connections.pop(connection_id, None)

    def get(self, connection_id: str) -> LiveConnection | None:
        return self._connections.get(connection_id)

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[LiveConnection]:
        return iter(list(self._connections.values()))


@dataclass(frozen=True)
class ManagementResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


# The answer to a delivered POST, the one a broadcast gets a thousand times: built once.
POSTED = ManagementResponse(200, (), b"")


@functools.lru_cache(maxsize=8192)  # a broadcast names the same paths round after round
def management_path(path: str) -> str | None:
    """The connection id a ``@connections`` path names, or None for any other path."""
    matched = _PATH.match(path)
    return unquote(matched.group("id")) if matched else None


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _json(status: int, payload: object, error_type: str | None = None) -> ManagementResponse:
    headers = [("Content-Type", "application/json")]
    if error_type is not None:
        headers.append(("x-amzn-ErrorType", error_type))
    return ManagementResponse(status, tuple(headers), json.dumps(payload).encode())


def _error(status: int, error_type: str, message: str) -> ManagementResponse:
    return _json(status, {"__type": error_type, "message": message}, error_type)


def handle_management(  # noqa: PLR0911 - one answer per API Gateway outcome
    registry: ConnectionRegistry, method: str, path: str, body: bytes
) -> ManagementResponse:
    """Answer one management API request.

    Synchronous on purpose: the transport answers a batch of pipelined requests in one pass and
    one write, which is what makes fan-out through ``@connections`` cheap.
    """
    connection_id = management_path(path)
    if connection_id is None:
        return _error(403, "ForbiddenException", "Forbidden")

    connection = registry.get(connection_id)
    if method not in {"POST", "GET", "DELETE"}:
        return _error(403, "ForbiddenException", "Forbidden")
    if connection is None:
        log.debug("@connections %s %s: gone", method, connection_id)
        return _error(410, "GoneException", f"connection {connection_id} is gone")

    if method == "GET":
        return _json(
            200,
            {
                "connectedAt": _iso(connection.connected_at),
                "lastActiveAt": _iso(connection.last_active_at),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            },
        )
    if method == "DELETE":
        connection.delete()
        return ManagementResponse(204, (), b"")

    if len(body) > MESSAGE_LIMIT_BYTES:
        return _error(413, "PayloadTooLargeException", "Message too long")
    try:
        connection.post(body)
    except ConnectionGone:
        return _error(410, "GoneException", f"connection {connection_id} is gone")
    return POSTED

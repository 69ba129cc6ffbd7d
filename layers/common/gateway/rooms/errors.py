"""The rooms package's exceptions.

Every error this package raises derives from :class:`RoomsError`::

    RoomsError
    ├── StoreUnavailable   Redis did not answer; raised from the redis-py error
    ├── InvalidMessage     a client's WebSocket message cannot be served; carries a short code
    └── PoisonRecord       a Kafka record that can never be broadcast; carries where it sits and why

``InvalidMessage`` and ``PoisonRecord`` describe bad input: the handlers answer or skip them and go
on. ``StoreUnavailable`` is an outage: the caller decides whether to refuse or to let the event be
delivered again.
"""

from __future__ import annotations

__all__ = ["InvalidMessage", "PoisonRecord", "RoomsError", "StoreUnavailable"]


class RoomsError(Exception):
    """Base class of the rooms package's errors."""


class StoreUnavailable(RoomsError):
    """The connection and room store (Redis) failed or timed out."""


class InvalidMessage(RoomsError):
    """A client message that the WebSocket routes cannot serve.

    ``code`` is stable and machine-readable (``payload_too_large``, ``invalid_json``,
    ``invalid_message``, ``unknown_action``, ``forbidden``); the message is safe to show the client.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PoisonRecord(RoomsError):
    """A Kafka record that is not a valid ticket event; it is skipped, never retried."""

    def __init__(
        self, reason: str, *, topic: str | None, partition: int | None, offset: int | None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset

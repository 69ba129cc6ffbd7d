"""WebSocket connections and project rooms in Redis, and the broadcast of ticket events to them.

- :mod:`~gateway.rooms.store`: connection records and rooms (``ws:`` keys).
- :mod:`~gateway.rooms.messages`: what clients send to the room routes and what they get back.
- :mod:`~gateway.rooms.records`: Kafka event source mapping records and the ticket events inside.
- :mod:`~gateway.rooms.fanout`: concurrent posts to a room, with 410 and throttling handled.
- :mod:`~gateway.rooms.sender`: the Management API client (``POST @connections/{id}``).
- :mod:`~gateway.rooms.sigv4`: the Signature Version 4 it signs with, and the credentials.
- :mod:`~gateway.rooms.wire`: one HTTP/1.1 exchange on a pooled keep-alive connection.
- :mod:`~gateway.rooms.broadcast`: one Kafka batch, broadcast.
- :mod:`~gateway.rooms.errors`: the exception tree.
"""

from gateway.rooms.broadcast import BroadcastReport, broadcast_batch
from gateway.rooms.errors import InvalidMessage, PoisonRecord, RoomsError, StoreUnavailable
from gateway.rooms.fanout import Broadcaster, FanoutResult, management_client
from gateway.rooms.store import CONNECTION_TTL_SECONDS, Connection, RoomStore

__all__ = [
    "CONNECTION_TTL_SECONDS",
    "BroadcastReport",
    "Broadcaster",
    "Connection",
    "FanoutResult",
    "InvalidMessage",
    "PoisonRecord",
    "RoomStore",
    "RoomsError",
    "StoreUnavailable",
    "broadcast_batch",
    "management_client",
]

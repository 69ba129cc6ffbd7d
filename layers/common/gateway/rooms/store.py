"""WebSocket connections and project rooms, kept in Redis.

Two kinds of key, each touched by its own commands so that the layout works unchanged on a Redis
Cluster (ElastiCache cluster mode), where one command may only touch one slot:

- ``ws:conn:{<connectionId>}``: a hash, the connection record. Fields ``user``,
  ``connectedAt`` (epoch milliseconds), ``projects`` (comma-joined ids the token allows) and one
  ``room:<projectId>`` field per room joined. It expires two hours after ``$connect``, API
  Gateway's maximum connection duration, so a connection whose ``$disconnect`` never came leaves
  no record behind.
- ``ws:room:{<projectId>}``: a set of connection ids. Each join pushes its expiry two hours out:
  every member joined at or before the last join, and no connection outlives two hours, so once a
  room has seen no join for two hours all of its members are gone and the key may go with them.

A member whose connection died without ``$disconnect`` stays in its rooms until a broadcast to it
answers 410 (the broadcast prunes it, :meth:`RoomStore.prune`) or the room expires.

Needs Redis 7 or later (``EXPIRE ... NX``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from redis.typing import EncodableT, FieldT

from gateway.redis_client import RedisLike
from gateway.rooms.errors import StoreUnavailable

__all__ = ["CONNECTION_TTL_SECONDS", "Connection", "RoomStore"]

logger = logging.getLogger(__name__)

# API Gateway closes every WebSocket connection after two hours at most ("Connection duration for
# WebSocket APIs", API Gateway quotas).
CONNECTION_TTL_SECONDS = 2 * 60 * 60

_ROOM_FIELD = "room:"


@dataclass(frozen=True)
class Connection:
    """What the store knows about one WebSocket connection."""

    connection_id: str
    user_id: str
    connected_at: int
    projects: frozenset[str]
    rooms: frozenset[str]


class RoomStore:
    """Connection records and project rooms in Redis; every Redis error becomes StoreUnavailable."""

    def __init__(
        self, client: RedisLike, *, prefix: str = "ws:", ttl_seconds: int = CONNECTION_TTL_SECONDS
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def connection_key(self, connection_id: str) -> str:
        """The hash of one connection's record, hash-tagged by the connection id."""
        return f"{self._prefix}conn:{{{connection_id}}}"

    def room_key(self, project_id: str) -> str:
        """The set of a project's connection ids, hash-tagged by the project id."""
        return f"{self._prefix}room:{{{project_id}}}"

    def open(
        self, connection_id: str, *, user_id: str, projects: Iterable[str], connected_at: int
    ) -> None:
        """Record a new connection (``$connect``), replacing any record under the same id."""
        key = self.connection_key(connection_id)
        fields: dict[FieldT, EncodableT] = {
            "user": user_id,
            "connectedAt": str(connected_at),
            "projects": ",".join(sorted(set(projects))),
        }
        with _guard("open", connection_id):
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self._ttl)
            pipe.execute()

    def get(self, connection_id: str) -> Connection | None:
        """The connection's record, or None when it was never opened, closed, or expired."""
        with _guard("get", connection_id):
            raw = self._redis.hgetall(self.connection_key(connection_id))
        if not raw:
            return None
        fields = {_text(name): _text(value) for name, value in raw.items()}
        return Connection(
            connection_id=connection_id,
            user_id=fields.get("user", ""),
            connected_at=int(fields.get("connectedAt", "0") or 0),
            projects=frozenset(p for p in fields.get("projects", "").split(",") if p),
            rooms=_rooms_of(fields),
        )

    def join(self, connection_id: str, project_id: str) -> None:
        """Put the connection in the project's room, noting the room in its record.

        The record is written first: if the second step fails, ``$disconnect`` still finds the
        room to leave. ``EXPIRE ... NX`` gives a record that ``$connect`` never wrote (Redis
        flushed, or the record expired early) the same two-hour bound, without extending one.

        A ``subscribe`` and the ``$disconnect`` of the same connection may run at once in two
        Lambda instances::

            subscribe (instance A)           $disconnect (instance B)
                                             HGETALL record -> no rooms yet
            HSET record room:p-1, SADD room
                                             DEL record
            -> room p-1 keeps a dead member, its record is gone

        Nothing locks against this, since record and room live in different cluster slots. The dead
        member costs one 410 on the next broadcast to p-1, which prunes it; or the room expires.
        """
        conn_key = self.connection_key(connection_id)
        room_key = self.room_key(project_id)
        with _guard("join", connection_id):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(conn_key, _ROOM_FIELD + project_id, "1")
            pipe.expire(conn_key, self._ttl, nx=True)
            pipe.sadd(room_key, connection_id)
            pipe.expire(room_key, self._ttl)
            pipe.execute()

    def leave(self, connection_id: str, project_id: str) -> bool:
        """Take the connection out of one room; True if it was a member."""
        with _guard("leave", connection_id):
            pipe = self._redis.pipeline(transaction=False)
            pipe.srem(self.room_key(project_id), connection_id)
            pipe.hdel(self.connection_key(connection_id), _ROOM_FIELD + project_id)
            removed, _ = pipe.execute()
        return bool(removed)

    def close(self, connection_id: str) -> frozenset[str]:
        """Leave every room and delete the record (``$disconnect``); safe to call again and again.

        Returns the rooms left. A second call finds no record and changes nothing.
        """
        key = self.connection_key(connection_id)
        with _guard("close", connection_id):
            raw = self._redis.hgetall(key)
            rooms = _rooms_of({_text(name): "" for name in raw})
            pipe = self._redis.pipeline(transaction=False)
            for project_id in rooms:
                pipe.srem(self.room_key(project_id), connection_id)
            pipe.delete(key)
            pipe.execute()
        return rooms

    def prune(self, connection_id: str, project_id: str) -> frozenset[str]:
        """Forget a connection API Gateway reports gone (410), from ``project_id``'s room too.

        The room being broadcast to is named because the record may have expired while the
        room's entry lingers.
        """
        rooms = self.close(connection_id)
        if project_id not in rooms:
            with _guard("prune", connection_id):
                self._redis.srem(self.room_key(project_id), connection_id)
        return rooms | {project_id}

    def members(self, project_id: str) -> list[str]:
        """The connection ids in the project's room."""
        with _guard("members", project_id):
            raw = self._redis.smembers(self.room_key(project_id))
        return sorted(_text(member) for member in raw)


@contextmanager
def _guard(operation: str, subject: str) -> Iterator[None]:
    """Turn a redis-py error into StoreUnavailable, logging the operation and its subject."""
    try:
        yield
    except redis.RedisError as exc:
        logger.warning("room store %s failed for %s: %s", operation, subject, exc)
        raise StoreUnavailable(f"room store unavailable during {operation}") from exc


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _rooms_of(fields: dict[str, str]) -> frozenset[str]:
    return frozenset(name[len(_ROOM_FIELD) :] for name in fields if name.startswith(_ROOM_FIELD))

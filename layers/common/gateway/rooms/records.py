"""Kafka records as Lambda's event source mapping delivers them, and the ticket events inside.

The event (self-managed Kafka: ``eventSource`` ``SelfManagedKafka`` and ``bootstrapServers``;
Amazon MSK: ``aws:kafka`` and ``eventSourceArn``) groups records under ``"<topic>-<partition>"``.
Each record carries ``topic``, ``partition``, ``offset``, ``timestamp``, a base64 ``key`` (absent
or null when the producer sent none), a base64 ``value`` and ``headers``: a list of one-entry
objects ``{"<name>": [byte, byte, ...]}``.

A record whose value is a ticket event becomes a :class:`TicketUpdate` holding the exact bytes every
client of the project's room receives:
``{"type", "eventId": "<topic>-<partition>-<offset>", "projectId", "ticket", "at"}``. Delivery is
at least once, so the event id is what clients drop duplicates by. Anything else raises
:class:`PoisonRecord`; a poison record is skipped and never retried.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.rooms.errors import PoisonRecord
from gateway.rooms.messages import MAX_PROJECT_ID_LENGTH

__all__ = [
    "MAX_MESSAGE_BYTES",
    "KafkaRecord",
    "TicketUpdate",
    "decode_record",
    "event_records",
    "ticket_update",
]

# post_to_connection refuses data over 128 KiB (API Gateway WebSocket quotas: message payload size),
# so a larger message would fail for every recipient: it is poison.
MAX_MESSAGE_BYTES = 128 * 1024


@dataclass(frozen=True)
class KafkaRecord:
    """One decoded Kafka record."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def event_id(self) -> str:
        """``<topic>-<partition>-<offset>``: the same for every redelivery of this record."""
        return f"{self.topic}-{self.partition}-{self.offset}"


@dataclass(frozen=True)
class TicketUpdate:
    """A valid ticket event: the room to send to and the bytes to send."""

    event_id: str
    project_id: str
    data: bytes


def event_records(event: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield ``(group, raw record)`` for every record of the batch, groups in the event's order.

    A malformed batch (no ``records`` map, a group that is not a list) yields nothing for the
    broken part; the caller cannot even name a record there.
    """
    groups = event.get("records")
    if not isinstance(groups, Mapping):
        return
    for group, raws in groups.items():
        if isinstance(raws, list):
            for raw in raws:
                yield str(group), raw


def decode_record(group: str, raw: Any) -> KafkaRecord:
    """Decode one raw record of group ``"<topic>-<partition>"``; PoisonRecord if it is malformed."""
    topic, partition = _split_group(group)
    if not isinstance(raw, Mapping):
        raise PoisonRecord("record is not an object", topic=topic, partition=partition, offset=None)
    topic = raw["topic"] if isinstance(raw.get("topic"), str) else topic
    partition = _int_or_none(raw.get("partition"), partition)
    offset = _int_or_none(raw.get("offset"), None)
    if topic is None or partition is None or offset is None:
        raise PoisonRecord(
            "record lacks topic, partition or offset",
            topic=topic,
            partition=partition,
            offset=offset,
        )

    def poison(reason: str) -> PoisonRecord:
        return PoisonRecord(reason, topic=topic, partition=partition, offset=offset)

    return KafkaRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=_int_or_none(raw.get("timestamp"), None),
        key=_b64(raw.get("key"), "key", poison),
        value=_b64(raw.get("value"), "value", poison),
        headers=_headers(raw.get("headers")),
    )


def ticket_update(record: KafkaRecord) -> TicketUpdate:
    """The client message for a record whose value is a ticket event, or PoisonRecord."""

    def poison(reason: str) -> PoisonRecord:
        return PoisonRecord(
            reason, topic=record.topic, partition=record.partition, offset=record.offset
        )

    if record.value is None:
        raise poison("value is missing (tombstone)")
    try:
        value = json.loads(record.value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise poison("value is not UTF-8 JSON") from exc
    if not isinstance(value, dict):
        raise poison("value is not a JSON object")
    event_type, project_id, ticket = value.get("type"), value.get("projectId"), value.get("ticket")
    if not isinstance(event_type, str) or not event_type:
        raise poison("type is missing or not a string")
    if not isinstance(project_id, str) or not 0 < len(project_id) <= MAX_PROJECT_ID_LENGTH:
        raise poison("projectId is missing or not a string of 1 to 128 characters")
    if not isinstance(ticket, dict):
        raise poison("ticket is missing or not an object")
    # "at" falls back to the record's own timestamp: every record from an event source mapping
    # has one.
    at = value.get("at")
    if at is None:
        at = _iso(record.timestamp)
    if not isinstance(at, str):
        raise poison("at is missing or not a string")

    message = {
        "type": event_type,
        "eventId": record.event_id,
        "projectId": project_id,
        "ticket": ticket,
        "at": at,
    }
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise poison(
            f"message is {len(data)} bytes, over the {MAX_MESSAGE_BYTES} bytes a "
            "WebSocket message may carry"
        )
    return TicketUpdate(event_id=record.event_id, project_id=project_id, data=data)


def _split_group(group: str) -> tuple[str | None, int | None]:
    # Topic names may themselves contain '-', so the partition is what follows the last one.
    topic, sep, partition = group.rpartition("-")
    if not sep or not partition.isdigit():
        return None, None
    return topic, int(partition)


def _int_or_none(value: Any, default: int | None) -> int | None:
    # Some published samples carry the partition as a string ("0"); both forms are accepted.
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def _b64(value: Any, name: str, poison: Callable[[str], PoisonRecord]) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise poison(f"{name} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise poison(f"{name} is not valid base64") from exc


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    """Headers as ``(name, bytes)`` pairs; entries that are not ``{name: [0..255, ...]}`` are
    dropped, since no header decides whether a record is delivered."""
    if not isinstance(raw, list):
        return ()
    headers: list[tuple[str, bytes]] = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            continue
        for name, octets in entry.items():
            if isinstance(octets, list) and all(
                isinstance(o, int) and not isinstance(o, bool) and 0 <= o <= 255 for o in octets
            ):
                headers.append((str(name), bytes(octets)))
    return tuple(headers)


def _iso(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")

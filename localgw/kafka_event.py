"""Turn records read from Kafka into the event Lambda's Kafka event source mappings deliver.

The shape follows AWS's documented formats for self-managed Apache Kafka (``eventSource``
``SelfManagedKafka``, with ``bootstrapServers``) and Amazon MSK (``aws:kafka``, with
``eventSourceArn``): records grouped under ``"<topic>-<partition>"``, key and value in base64,
each header a one-entry object whose value is the list of the header's byte values. A record with
a null key carries no ``key`` field, as Lambda sends it; a null value (a tombstone) carries none
either.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["KafkaRecordLike", "build_kafka_event", "record_to_lambda"]

_TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}


class KafkaRecordLike(Protocol):
    """What the builder reads of a record: kafka-python's ``ConsumerRecord`` has it all."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def record_to_lambda(record: KafkaRecordLike) -> dict[str, Any]:
    """One record as Lambda writes it in the event."""
    item: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestampType": _TIMESTAMP_TYPES.get(record.timestamp_type, "CREATE_TIME"),
    }
    if record.key is not None:
        item["key"] = _b64(record.key)
    if record.value is not None:
        item["value"] = _b64(record.value)
    item["headers"] = [{name: list(value or b"")} for name, value in (record.headers or [])]
    return item


def build_kafka_event(
    records: Iterable[KafkaRecordLike],
    *,
    event_source: str = "SelfManagedKafka",
    bootstrap_servers: str | None = None,
    event_source_arn: str | None = None,
) -> dict[str, Any]:
    """Group ``records`` by topic-partition, in the order given, into one Lambda Kafka event.

    ``event_source`` is ``"SelfManagedKafka"`` or ``"aws:kafka"`` (Amazon MSK, which also names
    its cluster in ``event_source_arn``).
    """
    if event_source not in {"SelfManagedKafka", "aws:kafka"}:
        raise ValueError(f"unknown Kafka event source {event_source!r}")

    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        partition = f"{record.topic}-{record.partition}"
        grouped.setdefault(partition, []).append(record_to_lambda(record))

    event: dict[str, Any] = {"eventSource": event_source}
    if event_source_arn is not None:
        event["eventSourceArn"] = event_source_arn
    if bootstrap_servers is not None:
        event["bootstrapServers"] = bootstrap_servers
    event["records"] = grouped
    return event

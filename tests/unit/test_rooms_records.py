"""Kafka event source mapping events from the event files, decoded, and the messages built."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.rooms import PoisonRecord
from gateway.rooms.records import (
    MAX_MESSAGE_BYTES,
    KafkaRecord,
    decode_record,
    event_records,
    ticket_update,
)
from tests.conftest import load_event


def _decoded(name: str) -> list[KafkaRecord]:
    return [decode_record(group, raw) for group, raw in event_records(load_event(name))]


def _record(value: Any, **fields: Any) -> KafkaRecord:
    data = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    base: dict[str, Any] = {
        "topic": "ticket.updated",
        "partition": 0,
        "offset": 5,
        "timestamp": 1_796_316_030_000,
        "key": None,
        "value": data,
        "headers": (),
    }
    return KafkaRecord(**{**base, **fields})


def test_self_managed_event_decodes_one_record_with_key_and_headers() -> None:
    (record,) = _decoded("kafka-self-managed")

    assert (record.topic, record.partition, record.offset) == ("ticket.updated", 0, 41)
    assert record.key == b"p-1"
    assert record.headers == (
        ("content-type", b"application/json"),
        ("producer", b"ticket-service"),
    )
    assert record.event_id == "ticket.updated-0-41"


def test_msk_event_keeps_partition_order_and_reads_absent_or_null_key_as_none() -> None:
    records = _decoded("kafka-msk-partitions")

    assert [(r.partition, r.offset) for r in records] == [(0, 100), (0, 101), (1, 7), (1, 8)]
    assert [r.key for r in records] == [b"p-1", b"p-1", None, None]
    assert records[2].headers == ()


def test_ticket_update_builds_client_message_with_event_id() -> None:
    (record,) = _decoded("kafka-self-managed")

    update = ticket_update(record)

    assert update.project_id == "p-1"
    assert json.loads(update.data) == {
        "type": "ticket.updated",
        "eventId": "ticket.updated-0-41",
        "projectId": "p-1",
        "ticket": {"id": "t-7", "title": "Fix login redirect", "status": "in_progress"},
        "at": "2026-12-03T16:40:30Z",
    }


def test_ticket_update_without_at_takes_record_timestamp() -> None:
    update = ticket_update(
        _record({"type": "ticket.updated", "projectId": "p-1", "ticket": {"id": "t-1"}})
    )

    assert json.loads(update.data)["at"] == "2026-12-03T16:40:30Z"


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (200, "value is not UTF-8 JSON"),
        (202, "projectId is missing"),
        (203, "projectId is missing or not a string"),
        (204, "ticket is missing or not an object"),
        (205, "value is not a JSON object"),
        (206, "value is not valid base64"),
        (207, "value is missing"),
    ],
)
def test_poison_event_file_records_raise_poison_with_position_and_reason(
    offset: int, reason: str
) -> None:
    event = load_event("kafka-poison")
    raw = next(r for r in event["records"]["ticket.updated-0"] if r["offset"] == offset)

    with pytest.raises(PoisonRecord) as caught:
        ticket_update(decode_record("ticket.updated-0", raw))

    assert reason in caught.value.reason
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == (
        "ticket.updated",
        0,
        offset,
    )


def test_poison_event_file_keeps_its_valid_records_valid() -> None:
    event = load_event("kafka-poison")
    valid = []
    for group, raw in event_records(event):
        try:
            valid.append(ticket_update(decode_record(group, raw)).event_id)
        except PoisonRecord:
            continue

    assert valid == ["ticket.updated-0-201", "ticket.updated-0-208"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"projectId": "p-1", "ticket": {}}, "type is missing"),
        ({"type": "", "projectId": "p-1", "ticket": {}}, "type is missing"),
        ({"type": "ticket.updated", "projectId": "", "ticket": {}}, "projectId"),
        ({"type": "ticket.updated", "projectId": "p" * 129, "ticket": {}}, "projectId"),
        ({"type": "ticket.updated", "projectId": "p-1", "ticket": {}, "at": 17}, "at is"),
        (b"\xff\xfe{}", "not UTF-8 JSON"),
    ],
)
def test_ticket_update_rejects_invalid_values(value: Any, reason: str) -> None:
    with pytest.raises(PoisonRecord, match=reason):
        ticket_update(_record(value))


def test_ticket_update_rejects_message_over_websocket_limit() -> None:
    big = {
        "type": "ticket.updated",
        "projectId": "p-1",
        "ticket": {"id": "t-1", "description": "x" * MAX_MESSAGE_BYTES},
    }

    with pytest.raises(PoisonRecord, match="bytes"):
        ticket_update(_record(big))


def test_decode_record_accepts_partition_given_as_string() -> None:
    raw = {
        "topic": "ticket.updated",
        "partition": "3",
        "offset": 9,
        "value": base64.b64encode(b"{}").decode(),
    }

    assert decode_record("ticket.updated-3", raw).partition == 3


def test_decode_record_takes_topic_and_partition_from_group_when_record_lacks_them() -> None:
    record = decode_record("ticket.updated-2", {"offset": 4, "value": None})

    assert (record.topic, record.partition, record.offset) == ("ticket.updated", 2, 4)


@pytest.mark.parametrize(
    ("group", "raw", "reason"),
    [
        ("ticket.updated-0", "not an object", "not an object"),
        ("ticket.updated-0", {"topic": "ticket.updated", "partition": 0}, "lacks"),
        ("no-partition-here", {"offset": 1}, "lacks"),
        ("ticket.updated-0", {"offset": 1, "key": 17}, "key is not a base64 string"),
    ],
)
def test_decode_record_rejects_malformed_records(group: str, raw: Any, reason: str) -> None:
    with pytest.raises(PoisonRecord, match=reason):
        decode_record(group, raw)


def test_decode_record_drops_headers_that_are_not_byte_lists() -> None:
    raw = {"offset": 1, "headers": [{"ok": [104, 105]}, {"bad": [300]}, {"worse": "x"}, 7]}

    assert decode_record("t-0", raw).headers == (("ok", b"hi"),)


@pytest.mark.parametrize("event", [{}, {"records": []}, {"records": {"t-0": "nope"}}])
def test_event_records_yields_nothing_for_malformed_batches(event: dict[str, Any]) -> None:
    assert list(event_records(event)) == []

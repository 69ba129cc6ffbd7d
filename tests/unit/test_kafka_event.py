"""The Lambda Kafka event built from consumer records, checked against AWS's documented shape."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pytest

from localgw.kafka_event import build_kafka_event


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp: int = 1_700_000_000_000
    timestamp_type: int = 0


def test_build_kafka_event_groups_records_by_topic_partition_in_order() -> None:
    records = [
        Record("ticket.updated", 1, 7, b"p-2", b"{}"),
        Record("ticket.updated", 0, 3, b"p-1", b"{}"),
        Record("ticket.updated", 1, 8, b"p-2", b"{}"),
    ]

    event = build_kafka_event(records, bootstrap_servers="127.0.0.1:9092")

    assert event["eventSource"] == "SelfManagedKafka"
    assert event["bootstrapServers"] == "127.0.0.1:9092"
    assert list(event["records"]) == ["ticket.updated-1", "ticket.updated-0"]
    assert [r["offset"] for r in event["records"]["ticket.updated-1"]] == [7, 8]


def test_build_kafka_event_encodes_key_value_in_base64_and_headers_as_byte_lists() -> None:
    record = Record("t", 0, 0, b"p-1", b'{"a": 1}', headers=[("trace", b"ab"), ("empty", None)])

    (item,) = build_kafka_event([record])["records"]["t-0"]

    assert base64.b64decode(item["key"]) == b"p-1"
    assert base64.b64decode(item["value"]) == b'{"a": 1}'
    assert item["headers"] == [{"trace": [97, 98]}, {"empty": []}]
    assert item["timestampType"] == "CREATE_TIME"


def test_build_kafka_event_omits_key_and_value_when_null() -> None:
    (item,) = build_kafka_event([Record("t", 0, 0, None, None)])["records"]["t-0"]

    assert "key" not in item
    assert "value" not in item


def test_build_kafka_event_for_msk_names_the_cluster_arn() -> None:
    arn = "arn:aws:kafka:us-east-1:123456789012:cluster/demo/abc"

    event = build_kafka_event([], event_source="aws:kafka", event_source_arn=arn)

    assert event == {"eventSource": "aws:kafka", "eventSourceArn": arn, "records": {}}


def test_build_kafka_event_rejects_an_unknown_event_source() -> None:
    with pytest.raises(ValueError, match="unknown Kafka event source"):
        build_kafka_event([], event_source="aws:sqs")

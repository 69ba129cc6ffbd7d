"""Kafka event source mappings: read a template's ``AWS::Lambda::EventSourceMapping`` resources for
self-managed Kafka and Amazon MSK, and run each one locally as Lambda's poller does.

One mapping is one consumer (kafka-python) in a thread of the emulator's process, in the group the
mapping names (``SelfManagedKafkaEventSourceConfig`` or ``AmazonManagedKafkaEventSourceConfig``
``ConsumerGroupId``; Lambda's default is the mapping's UUID, here ``localgw-<logical id>``), on
its ``Topics``, from ``StartingPosition`` (``LATEST`` or ``TRIM_HORIZON``) when the group has no
committed offset. Records are gathered until ``BatchSize`` (default 100) is reached or
``MaximumBatchingWindowInSeconds`` (default 0.5 s for Kafka) has passed since the first one, then
turned into one Lambda Kafka event (:func:`localgw.kafka_event.build_kafka_event`) and handed to
the function through the emulator's runtime, on the emulator's event loop.

Delivery is at least once, as on AWS:

- offsets are committed only after the function returned; a function error retries the same
  batch, with exponential backoff (1 s doubling to 30 s by default) and a WARNING each time, until
  it succeeds or the mapping stops; while it waits, the partitions are paused and the consumer
  keeps polling, so the group does not evict it;
- a broker that goes away (restart, network) is waited for: kafka-python reconnects by itself, and
  a consumer that fails outright is closed and made again after a backoff; what was not committed
  is read again.

Brokers: a local run has no MSK cluster and usually not the template's brokers, so the emulator
passes its own (``--kafka-bootstrap-servers`` / ``KAFKA_BOOTSTRAP_SERVERS``); the event still says
``SelfManagedKafka`` with ``bootstrapServers`` or ``aws:kafka`` with ``eventSourceArn``, as the
template chose.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from localgw.kafka_event import build_kafka_event
from localgw.websocket_api import InvocationError, Invoker

if TYPE_CHECKING:
    from localgw.template import TemplateModel

__all__ = [
    "KafkaMapping",
    "KafkaMappingError",
    "MappingRunner",
    "RetryPolicy",
    "kafka_mappings",
    "kafka_mappings_from_model",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
DEFAULT_BATCHING_WINDOW_SECONDS = 0.5
_POLL_SLICE_SECONDS = 0.2


class KafkaMappingError(ValueError):
    """An event source mapping in the template cannot be run as written."""


@dataclass(frozen=True)
class KafkaMapping:
    """One Kafka event source mapping, read from the template."""

    logical_id: str
    function: str
    topics: tuple[str, ...]
    consumer_group_id: str
    starting_position: str = "LATEST"
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window: float = DEFAULT_BATCHING_WINDOW_SECONDS
    event_source: str = "SelfManagedKafka"
    bootstrap_servers: tuple[str, ...] = ()
    event_source_arn: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts at a failed batch: ``base`` doubling up to ``ceiling`` seconds."""

    base: float = 1.0
    ceiling: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.base * 2 ** max(attempt - 1, 0), self.ceiling))


def _number(value: Any, default: float, name: str, owner: str) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise KafkaMappingError(f"{owner}: {name} must be a number, got {value!r}") from exc


def kafka_mappings(
    resources: Mapping[str, Mapping[str, Any]], function_ids: Mapping[str, str]
) -> list[KafkaMapping]:
    """The Kafka mappings among resolved ``Resources``.

    ``function_ids`` maps every name a ``FunctionName`` may carry (function name, ARN, logical id)
    to the function's logical id. Mappings of other sources (SQS, streams) are left out.
    """
    mappings: list[KafkaMapping] = []
    for logical, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = dict(resource.get("Properties") or {})
        self_managed = "SelfManagedEventSource" in props
        msk = ":kafka:" in str(props.get("EventSourceArn", ""))
        if not (self_managed or msk):
            continue
        mappings.append(_mapping(logical, props, function_ids, self_managed))
    return mappings


def _mapping(
    logical: str, props: Mapping[str, Any], function_ids: Mapping[str, str], self_managed: bool
) -> KafkaMapping:
    named = str(props.get("FunctionName", ""))
    function = function_ids.get(named) or function_ids.get(named.rsplit(":", 1)[-1])
    if function is None:
        raise KafkaMappingError(f"{logical}: no function named {named!r} in the template")
    config_key = (
        "SelfManagedKafkaEventSourceConfig"
        if self_managed
        else "AmazonManagedKafkaEventSourceConfig"
    )
    group = (props.get(config_key) or {}).get("ConsumerGroupId") or f"localgw-{logical}"
    servers: list[str] = []
    if self_managed:
        endpoints = (props.get("SelfManagedEventSource") or {}).get("Endpoints") or {}
        raw = endpoints.get("KafkaBootstrapServers") or []
        servers = [raw] if isinstance(raw, str) else [str(item) for item in raw]
    topics = props.get("Topics") or []
    if not topics:
        raise KafkaMappingError(f"{logical}: a Kafka mapping needs Topics")
    position = str(props.get("StartingPosition") or "LATEST").upper()
    if position not in {"LATEST", "TRIM_HORIZON"}:
        raise KafkaMappingError(f"{logical}: StartingPosition {position} is not served locally")
    enabled = props.get("Enabled", True)
    return KafkaMapping(
        logical_id=logical,
        function=function,
        topics=tuple(str(topic) for topic in topics),
        consumer_group_id=str(group),
        starting_position=position,
        batch_size=int(_number(props.get("BatchSize"), DEFAULT_BATCH_SIZE, "BatchSize", logical)),
        batching_window=_number(
            props.get("MaximumBatchingWindowInSeconds"),
            DEFAULT_BATCHING_WINDOW_SECONDS,
            "MaximumBatchingWindowInSeconds",
            logical,
        ),
        event_source="SelfManagedKafka" if self_managed else "aws:kafka",
        bootstrap_servers=tuple(servers),
        event_source_arn=None if self_managed else str(props.get("EventSourceArn")),
        enabled=str(enabled).lower() not in {"false", "0"},
    )


def kafka_mappings_from_model(model: TemplateModel) -> list[KafkaMapping]:
    """The Kafka mappings of a loaded template whose Condition holds."""
    names: dict[str, str] = {}
    for logical, spec in model.functions.items():
        names[logical] = logical
        names[spec.function_name] = logical
        if spec.arn:
            names[spec.arn] = logical
    return kafka_mappings(model.resources, names)


@dataclass
class _Stats:
    batches: int = 0
    records: int = 0
    failures: int = 0
    committed: dict[str, int] = field(default_factory=dict)


class MappingRunner:
    """Run one mapping in a thread; the function is invoked on ``loop`` through ``invoke``.

    ``bootstrap_servers`` replaces the template's brokers (a local run's broker).
    ``consumer_options`` reach ``KafkaConsumer`` (tests shorten timeouts with them).
    """

    def __init__(
        self,
        mapping: KafkaMapping,
        invoke: Invoker,
        loop: asyncio.AbstractEventLoop,
        *,
        bootstrap_servers: str | None = None,
        retry: RetryPolicy | None = None,
        consumer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.mapping = mapping
        self.invoke = invoke
        self.loop = loop
        self.bootstrap = bootstrap_servers or ",".join(mapping.bootstrap_servers)
        if not self.bootstrap:
            raise KafkaMappingError(f"{mapping.logical_id}: no Kafka bootstrap servers")
        self.retry = retry or RetryPolicy()
        self.options = dict(consumer_options or {})
        self.stats = _Stats()
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"kafka-esm-{mapping.logical_id}", daemon=True
        )

    def start(self) -> None:
        log.info(
            "event source mapping %s: %s on %s (group %s, batch %d, window %.2fs)",
            self.mapping.logical_id,
            self.mapping.function,
            ",".join(self.mapping.topics),
            self.mapping.consumer_group_id,
            self.mapping.batch_size,
            self.mapping.batching_window,
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand (left uncommitted if unfinished) and leave the group."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wait_assigned(self, timeout: float) -> bool:
        """Block until the consumer has partitions (tests wait for the group to settle)."""
        return self._assigned.wait(timeout)

    # the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = self._consumer()
                failures = 0
                self._consume(consumer)
            except Exception as exc:  # the poller must outlive any one failure, as Lambda's does
                failures += 1
                delay = self.retry.delay(failures)
                if isinstance(exc, KafkaError):
                    log.warning(
                        "event source mapping %s: Kafka error %r; reconnecting in %.1fs",
                        self.mapping.logical_id,
                        exc,
                        delay,
                    )
                else:
                    log.exception(
                        "event source mapping %s: consumer failed; again in %.1fs",
                        self.mapping.logical_id,
                        delay,
                    )
                self._stop.wait(delay)
            finally:
                if consumer is not None:
                    self._close(consumer)

    def _consumer(self) -> KafkaConsumer:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "group_id": self.mapping.consumer_group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest"
            if self.mapping.starting_position == "TRIM_HORIZON"
            else "latest",
            "max_poll_records": self.mapping.batch_size,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            # The broker holds a fetch until this passes, even when records arrive meanwhile
            # (Tansu does): kafka-python's 500 ms default made a live board lag by a third of a
            # second. A fetch every 20 ms is nothing for a local broker.
            "fetch_max_wait_ms": 20,
            "client_id": f"localgw-{self.mapping.logical_id}",
        }
        options.update(self.options)
        consumer = KafkaConsumer(**options)
        consumer.subscribe(list(self.mapping.topics))
        return consumer

    def _close(self, consumer: KafkaConsumer) -> None:
        try:
            consumer.close(autocommit=False)
        except KafkaError as exc:
            log.debug("closing the consumer: %r", exc)

    def _consume(self, consumer: KafkaConsumer) -> None:
        while not self._stop.is_set():
            batch = self._gather(consumer)
            if batch and self._deliver(consumer, batch):
                self._commit(consumer, batch)

    def _gather(self, consumer: KafkaConsumer) -> list[Any]:
        """Up to BatchSize records, waiting at most the batching window after the first."""
        records: list[Any] = []
        deadline: float | None = None
        while not self._stop.is_set():
            remaining = _POLL_SLICE_SECONDS if deadline is None else deadline - time.monotonic()
            if records and remaining <= 0:
                break
            polled = consumer.poll(
                timeout_ms=int(max(remaining, 0) * 1000),
                max_records=self.mapping.batch_size - len(records),
            )
            if consumer.assignment():
                self._assigned.set()
            for partition in sorted(polled, key=lambda tp: (tp.topic, tp.partition)):
                records.extend(polled[partition])
            if not records:
                return []
            if deadline is None:
                deadline = time.monotonic() + self.mapping.batching_window
            if len(records) >= self.mapping.batch_size:
                break
        return records

    def _event(self, batch: list[Any]) -> dict[str, Any]:
        return build_kafka_event(
            batch,
            event_source=self.mapping.event_source,
            bootstrap_servers=self.bootstrap
            if self.mapping.event_source == "SelfManagedKafka"
            else None,
            event_source_arn=self.mapping.event_source_arn,
        )

    def _deliver(self, consumer: KafkaConsumer, batch: list[Any]) -> bool:
        """Invoke until the function succeeds; False if the mapping stopped first."""
        event = self._event(batch)
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            future = asyncio.run_coroutine_threadsafe(self._call(event), self.loop)
            try:
                future.result()
            except Exception as exc:  # any failure of the call is the batch's failure: retry it
                if not isinstance(exc, InvocationError):
                    log.exception(
                        "event source mapping %s: invoking %s raised",
                        self.mapping.logical_id,
                        self.mapping.function,
                    )
                self.stats.failures += 1
                delay = self.retry.delay(attempt)
                log.warning(
                    "event source mapping %s: %s failed on %d records (%s), attempt %d; "
                    "retrying in %.1fs: %s",
                    self.mapping.logical_id,
                    self.mapping.function,
                    len(batch),
                    _span(batch),
                    attempt,
                    delay,
                    exc,
                )
                self._wait_paused(consumer, delay)
                continue
            self.stats.batches += 1
            self.stats.records += len(batch)
            log.info(
                "event source mapping %s: %d records delivered (%s)",
                self.mapping.logical_id,
                len(batch),
                _span(batch),
            )
            return True
        return False

    async def _call(self, event: dict[str, Any]) -> Any:
        return await self.invoke(self.mapping.function, event)

    def _wait_paused(self, consumer: KafkaConsumer, delay: float) -> None:
        """Sleep ``delay`` yet stay in the group: partitions paused, polls that fetch nothing."""
        partitions = list(consumer.assignment())
        consumer.pause(*partitions)
        ends = time.monotonic() + delay
        try:
            while not self._stop.is_set() and (left := ends - time.monotonic()) > 0:
                consumer.poll(timeout_ms=int(min(left, _POLL_SLICE_SECONDS) * 1000))
        finally:
            consumer.resume(*partitions)

    def _commit(self, consumer: KafkaConsumer, batch: list[Any]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in batch:
            offsets[TopicPartition(record.topic, record.partition)] = OffsetAndMetadata(
                record.offset + 1, "", -1
            )
        try:
            consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced while the function ran: another member may read these records
            # again, which at-least-once delivery allows.
            log.warning(
                "event source mapping %s: commit refused after a rebalance: %s",
                self.mapping.logical_id,
                exc,
            )
            return
        for partition, meta in offsets.items():
            self.stats.committed[f"{partition.topic}-{partition.partition}"] = meta.offset


def _span(batch: list[Any]) -> str:
    first, last = batch[0], batch[-1]
    return (
        f"{first.topic}-{first.partition}@{first.offset}.."
        f"{last.topic}-{last.partition}@{last.offset}"
    )

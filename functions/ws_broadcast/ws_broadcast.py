"""Broadcast ``ticket.updated`` records from Kafka to the WebSocket clients of each project's room.

Invoked by a SelfManagedKafka or MSK event source mapping. Returns, and logs in one line, the
batch's counts: ``{records, delivered, pruned, skipped, failed}``. A poison record is logged with
its topic, partition, offset and reason, counted in the ``PoisonRecords`` metric and skipped; the
handler still returns normally, so the partition moves on.

Environment: ``WS_MANAGEMENT_ENDPOINT`` (required: the API's ``https://{api-id}.execute-api.
{region}.amazonaws.com/{stage}``, or a moto / emulator address), ``BROADCAST_CONCURRENCY``
(default 32), ``REDIS_URL``, ``REDIS_CLUSTER``, plus the Powertools variables every function reads.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from gateway.config import ConfigError, env_int, env_str
from gateway.observability import get_logger, get_metrics
from gateway.redis_client import get_redis
from gateway.rooms import Broadcaster, BroadcastReport, PoisonRecord, RoomStore, broadcast_batch
from gateway.rooms.fanout import DEFAULT_CONCURRENCY, management_client

logger = get_logger()
metrics = get_metrics()

_lock = threading.Lock()
_broadcaster: tuple[tuple[str, int], Broadcaster] | None = None


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """Lambda entry point (``ws_broadcast.handler``): broadcast one batch of Kafka records.

    An unreachable Redis raises, so that the event source mapping delivers the batch again; a
    poison record or a send that failed is counted and the batch goes on.
    """
    source = {
        "event_source": event.get("eventSource"),
        "event_source_arn": event.get("eventSourceArn"),
        "lambda_request_id": getattr(context, "aws_request_id", None),
    }
    report = BroadcastReport()
    try:
        broadcast_batch(
            event,
            store=RoomStore(get_redis()),
            broadcaster=get_broadcaster(),
            report=report,
            on_poison=_log_poison,
        )
    except Exception:
        logger.exception(
            "broadcast batch failed; it will be delivered again",
            extra={**source, **report.counts()},
        )
        raise
    finally:
        _add_metrics(report)

    counts = report.counts()
    logger.info("broadcast batch done", extra={**source, **counts, "retries": report.retries})
    return counts


def get_broadcaster() -> Broadcaster:
    """The warm function's Broadcaster, rebuilt only when its settings change (tests, emulator)."""
    global _broadcaster
    endpoint = env_str("WS_MANAGEMENT_ENDPOINT")
    if not endpoint:
        raise ConfigError("WS_MANAGEMENT_ENDPOINT is not set")
    concurrency = env_int("BROADCAST_CONCURRENCY", DEFAULT_CONCURRENCY)
    if concurrency < 1:
        raise ConfigError(f"BROADCAST_CONCURRENCY must be at least 1, got {concurrency}")
    settings = (endpoint, concurrency)
    with _lock:
        if _broadcaster is None or _broadcaster[0] != settings:
            if _broadcaster is not None:
                _broadcaster[1].close()
            client = management_client(endpoint, pool_size=concurrency)
            _broadcaster = (settings, Broadcaster(client, concurrency=concurrency))
        return _broadcaster[1]


def reset_broadcaster() -> None:
    """Forget the warm Broadcaster, stopping its threads (tests)."""
    global _broadcaster
    with _lock:
        if _broadcaster is not None:
            _broadcaster[1].close()
        _broadcaster = None


def _log_poison(poison: PoisonRecord) -> None:
    logger.warning(
        "poison record skipped",
        extra={
            "topic": poison.topic,
            "partition": poison.partition,
            "offset": poison.offset,
            "reason": poison.reason,
        },
    )


def _add_metrics(report: BroadcastReport) -> None:
    # Every metric is added on every invocation, zero included: dashboards see a flat line rather
    # than a gap, and Powertools never flushes an empty set.
    metrics.add_metric(name="Records", unit=MetricUnit.Count, value=report.records)
    metrics.add_metric(name="PoisonRecords", unit=MetricUnit.Count, value=report.skipped)
    metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=report.delivered)
    metrics.add_metric(name="Pruned", unit=MetricUnit.Count, value=report.pruned)
    metrics.add_metric(name="FailedSends", unit=MetricUnit.Count, value=report.failed)
    metrics.add_metric(name="ThrottleRetries", unit=MetricUnit.Count, value=report.retries)

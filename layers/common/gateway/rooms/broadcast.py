"""One Kafka batch, broadcast: every valid ticket event to every connection of its project's room.

Records are taken one at a time, in the event's order, and each is sent to its whole room before
the next starts: a client therefore sees a partition's updates in the order they were produced.
A poison record is counted and skipped. A connection API Gateway reports gone is pruned from every
room. An unreachable Redis raises :class:`~gateway.rooms.errors.StoreUnavailable`: the room cannot
be read, so the batch fails and the event source mapping delivers it again (clients drop the
repeats by event id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.rooms.errors import PoisonRecord, StoreUnavailable
from gateway.rooms.fanout import Broadcaster
from gateway.rooms.records import decode_record, event_records, ticket_update
from gateway.rooms.store import RoomStore

__all__ = ["BroadcastReport", "broadcast_batch"]

logger = logging.getLogger(__name__)


@dataclass
class BroadcastReport:
    """Counts for one batch; ``skipped`` counts poison records, ``failed`` failed sends."""

    records: int = 0
    delivered: int = 0
    pruned: int = 0
    skipped: int = 0
    failed: int = 0
    retries: int = 0
    poison: list[PoisonRecord] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The batch's figures by name, as the handler returns and logs them."""
        return {
            "records": self.records,
            "delivered": self.delivered,
            "pruned": self.pruned,
            "skipped": self.skipped,
            "failed": self.failed,
        }


def broadcast_batch(
    event: Mapping[str, Any],
    *,
    store: RoomStore,
    broadcaster: Broadcaster,
    report: BroadcastReport | None = None,
    on_poison: Callable[[PoisonRecord], None] | None = None,
) -> BroadcastReport:
    """Broadcast every record of a Kafka event; counts go into ``report`` as they happen, so a
    caller still has them when StoreUnavailable interrupts the batch."""
    report = report if report is not None else BroadcastReport()
    for group, raw in event_records(event):
        report.records += 1
        try:
            update = ticket_update(decode_record(group, raw))
        except PoisonRecord as poison:
            report.skipped += 1
            report.poison.append(poison)
            if on_poison is not None:
                on_poison(poison)
            continue

        members = store.members(update.project_id)
        if not members:
            continue
        result = broadcaster.send(update.data, members)
        report.delivered += result.delivered
        report.failed += result.failed
        report.retries += result.retries
        for connection_id in result.gone:
            try:
                store.prune(connection_id, update.project_id)
            except StoreUnavailable:
                # Not pruned now: the next broadcast to it answers 410 again and tries again.
                logger.warning("could not prune gone connection %s", connection_id)
                continue
            report.pruned += 1
    return report

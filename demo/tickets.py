"""Demo Ticket service: tickets in memory, and a ``ticket.updated`` Kafka record per change.

Records follow docs/architecture.md ("Records on Kafka"): topic ``ticket.updated``, key the
project id, value ``{"type", "projectId", "ticket", "at"}``. They leave from one background thread
in the order of the changes, so an answer never waits on the broker; when the broker cannot be
reached the change is still made and the failure logged.
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import queue
import threading
from typing import Any

from demo.users import USERS
from demo.web import JsonRequest, Reply, Router

__all__ = ["STATUSES", "TicketService"]

logger = logging.getLogger(__name__)

STATUSES = ("todo", "in-progress", "done")
TOPIC = "ticket.updated"

SEED = (
    ("p-1", "Set up the board", "done"),
    ("p-1", "Invite the team", "in-progress"),
    ("p-1", "Plan the first sprint", "todo"),
    ("p-2", "Write the release notes", "todo"),
    ("p-2", "Fix the login page", "in-progress"),
)


class TicketService:
    def __init__(self, bootstrap_servers: str | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._records: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self.tickets: dict[str, dict[str, Any]] = {}
        for project_id, title, status in SEED:
            ticket_id = f"t-{next(self._ids)}"
            self.tickets[ticket_id] = {
                "id": ticket_id, "projectId": project_id, "title": title, "status": status,
            }  # fmt: skip

    def router(self) -> Router:
        router = Router()
        router.add("GET", "/tickets", self.list_tickets)
        router.add("POST", "/tickets", self.create)
        router.add("GET", "/tickets/{ticket_id}", self.get)
        router.add("PATCH", "/tickets/{ticket_id}", self.update)
        return router

    def close(self) -> None:
        """Send the records still queued, then stop the sender."""
        if self._sender is not None:
            self._records.put(None)
            self._sender.join(10)

    # --- access ---------------------------------------------------------------------------------

    @staticmethod
    def _check_project(request: JsonRequest, project_id: str) -> None:
        user = USERS.get(request.user_id or "")
        if user is None:
            raise Reply(401, {"message": "no x-user-id: call through the gateway"})
        if project_id not in user.projects:
            raise Reply(403, {"message": f"{user.username} is not in project {project_id}"})

    def _ticket(self, request: JsonRequest) -> dict[str, Any]:
        ticket = self.tickets.get(request.params["ticket_id"])
        if ticket is None:
            raise Reply(404, {"message": "no such ticket"})
        self._check_project(request, ticket["projectId"])
        return ticket

    # --- routes ---------------------------------------------------------------------------------

    def list_tickets(self, request: JsonRequest) -> Reply:
        project_id = request.query.get("projectId")
        if not project_id:
            return Reply(400, {"message": "projectId is required"})
        self._check_project(request, project_id)
        with self._lock:
            items = [dict(t) for t in self.tickets.values() if t["projectId"] == project_id]
        return Reply(200, {"tickets": items})

    def get(self, request: JsonRequest) -> Reply:
        return Reply(200, dict(self._ticket(request)))

    def create(self, request: JsonRequest) -> Reply:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("projectId"), str):
            return Reply(400, {"message": 'expected {"projectId", "title", "status"?}'})
        self._check_project(request, body["projectId"])
        title, status = body.get("title"), body.get("status", "todo")
        if not isinstance(title, str) or not title.strip():
            return Reply(400, {"message": "title must be a non-empty string"})
        if status not in STATUSES:
            return Reply(400, {"message": f"status must be one of {list(STATUSES)}"})
        with self._lock:
            ticket_id = f"t-{next(self._ids)}"
            ticket = {
                "id": ticket_id,
                "projectId": body["projectId"],
                "title": title,
                "status": status,
            }
            self.tickets[ticket_id] = ticket
        self._publish(ticket)
        return Reply(201, dict(ticket), {"location": f"/tickets/{ticket_id}"})

    def update(self, request: JsonRequest) -> Reply:
        ticket = self._ticket(request)
        body = request.json()
        if not isinstance(body, dict) or not set(body) & {"title", "status"}:
            return Reply(400, {"message": 'expected {"title"?, "status"?}'})
        if "status" in body and body["status"] not in STATUSES:
            return Reply(400, {"message": f"status must be one of {list(STATUSES)}"})
        if "title" in body and (not isinstance(body["title"], str) or not body["title"].strip()):
            return Reply(400, {"message": "title must be a non-empty string"})
        with self._lock:
            ticket.update({key: body[key] for key in ("title", "status") if key in body})
            snapshot = dict(ticket)
        self._publish(snapshot)
        return Reply(200, snapshot)

    # --- Kafka ----------------------------------------------------------------------------------

    def _publish(self, ticket: dict[str, Any]) -> None:
        """Queue the change's record; one thread sends records in order, no answer waits."""
        if not self.bootstrap_servers:
            return
        record = {
            "type": TOPIC,
            "projectId": ticket["projectId"],
            "ticket": {k: ticket[k] for k in ("id", "title", "status")},
            "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        }
        with self._lock:
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_records, name="records", daemon=True
                )
                self._sender.start()
        self._records.put(record)

    def _send_records(self) -> None:
        from kafka import KafkaProducer

        producer = None
        while (record := self._records.get()) is not None:
            try:
                if producer is None:
                    producer = KafkaProducer(
                        bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=0,
                        request_timeout_ms=10_000, max_block_ms=30_000,
                    )  # fmt: skip
                key, value = record["projectId"].encode(), json.dumps(record).encode()
                producer.send(TOPIC, key=key, value=value).get(timeout=30)
            except Exception as exc:
                logger.warning(
                    "ticket %s changed but its record was not sent: %r", record["ticket"]["id"], exc
                )
        if producer is not None:
            producer.close(timeout=5)

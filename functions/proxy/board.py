"""The project board: ``GET /projects/{projectId}/board``, one answer from two services.

Tickets come from the Ticket service (``GET {TICKETS_URL}/tickets?projectId=``), assignments from
the Assignment service (``GET {ASSIGNMENTS_URL}/assignments?projectId=``), fetched in parallel so
the board takes as long as the slower of the two. Each service has its circuit breaker:

- assignments failing, timing out or behind an open breaker: 200 with the tickets, an empty
  ``assignments`` list and ``"degraded": ["assignments"]``;
- tickets failing: the board has nothing to show, so the answer is the failure itself: 503 with
  ``Retry-After`` behind an open breaker, 504 on a timeout, 502 otherwise; a 4xx from the Ticket
  service (an unknown project) is passed on as it came.

A caller whose token does not list the project (the authorizer's ``projects`` context) gets 403
before anything else happens.

Environment variables read: ``TICKETS_URL``, ``ASSIGNMENTS_URL``, ``UPSTREAM_TIMEOUT_SECONDS``
(default 5), ``RATE_LIMIT`` (default ``100/60``), ``RATE_LIMIT_FAILURE_POLICY``, ``BREAKER_*``,
``REDIS_URL``, ``REDIS_CLUSTER``, ``FRONTEND_ORIGIN`` (optional here).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from proxy import WarmInstance, answer, denied_result

from gateway.breaker import CircuitBreaker, CircuitOpen, Permit
from gateway.config import ConfigError, env_float, env_str
from gateway.cors import frontend_origin
from gateway.observability import get_logger, get_metrics
from gateway.ratelimit import Decision, Policy, RateLimiter, client_identity, limit_key
from gateway.redis_client import RedisLike
from gateway.upstream import (
    Caller,
    ConnectionPool,
    PendingResponse,
    UpstreamClient,
    UpstreamError,
    UpstreamResponse,
    error_result,
    json_result,
    upstream_result,
)

__all__ = ["Board", "BoardSettings", "handler", "reset"]

FRONTEND_ORIGIN = frontend_origin()

logger = get_logger()
metrics = get_metrics()

Result = dict[str, Any]

ROUTE_GROUP = "board"
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class BoardSettings:
    """The board's configuration; :meth:`from_env` reads the environment."""

    tickets_url: str
    assignments_url: str
    timeout: float = 5.0
    rate_limit: Policy | None = None
    frontend_origin: str | None = None

    @classmethod
    def from_env(cls) -> BoardSettings:
        tickets = (env_str("TICKETS_URL") or "").strip()
        assignments = (env_str("ASSIGNMENTS_URL") or "").strip()
        if not tickets or not assignments:
            raise ConfigError("TICKETS_URL and ASSIGNMENTS_URL must both be set")
        return cls(
            tickets_url=tickets,
            assignments_url=assignments,
            timeout=env_float("UPSTREAM_TIMEOUT_SECONDS", 5.0),
            rate_limit=Policy.from_env(ROUTE_GROUP),
            frontend_origin=FRONTEND_ORIGIN,
        )


@dataclass
class Part:
    """One service's share of the board: its items, or why they are missing."""

    name: str
    breaker: CircuitBreaker
    items: list[Any] | None = None
    response: UpstreamResponse | None = None
    error: UpstreamError | None = None
    retry_after: float | None = None
    elapsed: float = 0.0
    permit: Permit | None = None
    pending: PendingResponse | None = None
    started: float = field(default_factory=time.perf_counter)


class Board:
    """Builds boards; one per warm function."""

    def __init__(
        self,
        settings: BoardSettings,
        *,
        redis: RedisLike | None = None,
        pool: ConnectionPool | None = None,
        limiter: RateLimiter | None = None,
        tickets_breaker: CircuitBreaker | None = None,
        assignments_breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.policy = settings.rate_limit or Policy.parse("100/60", ROUTE_GROUP)
        lease = settings.timeout + 1
        self.tickets = UpstreamClient(settings.tickets_url, timeout=settings.timeout, pool=pool)
        self.assignments = UpstreamClient(
            settings.assignments_url, timeout=settings.timeout, pool=pool
        )
        self.limiter = limiter or RateLimiter.from_env(redis)
        self.tickets_breaker = tickets_breaker or CircuitBreaker.from_env(
            "tickets", client=redis, probe_lease=lease
        )
        self.assignments_breaker = assignments_breaker or CircuitBreaker.from_env(
            "assignments", client=redis, probe_lease=lease
        )

    def handle(self, event: Mapping[str, Any]) -> Result:
        """Answer one ``GET /projects/{projectId}/board`` route event."""
        caller = Caller.from_event(event)
        project_id = _project_id(event)
        if project_id is None:
            logger.warning("board asked for a malformed project id", extra={"status": 400})
            return error_result(400, "Bad Request")
        if project_id not in caller.projects:
            logger.info("project not in the caller's token", extra={"status": 403})
            return error_result(403, "Forbidden")

        cooling = self.tickets_breaker.open_for()
        if cooling:
            spared = Part("tickets", self.tickets_breaker, retry_after=cooling)
            return self._without_tickets(spared, None)

        decision = self.limiter.hit(
            limit_key(ROUTE_GROUP, client_identity(caller.user_id, caller.source_ip)), self.policy
        )
        if not decision.allowed:
            return denied_result([decision])

        headers = [("accept", "application/json")]
        if caller.user_id is not None:
            headers += [("x-user-id", caller.user_id), ("x-user-roles", caller.roles)]
        if caller.request_id:
            headers.append(("x-request-id", caller.request_id))
        query = f"projectId={quote(project_id, safe='')}"

        # Both requests leave before either answer is read, so both services work at once and
        # the board waits for the slower one only; one thread, no hand-offs between threads.
        assignments = self._send(
            Part("assignments", self.assignments_breaker), self.assignments, query, headers
        )
        tickets = self._send(Part("tickets", self.tickets_breaker), self.tickets, query, headers)
        self._receive(tickets)
        if tickets.items is None:
            if assignments.pending is not None:
                # The answer would not be shown: stop waiting. A cancelled call tells nothing
                # about the service's health, so its breaker hears nothing either.
                assignments.pending.cancel()
            return self._without_tickets(tickets, decision)
        self._receive(assignments)
        return self._answer(project_id, tickets, assignments, decision)

    @staticmethod
    def _send(
        part: Part, client: UpstreamClient, query: str, headers: list[tuple[str, str]]
    ) -> Part:
        try:
            part.permit = part.breaker.acquire()
        except CircuitOpen as exc:
            part.retry_after = exc.retry_after
            return part
        try:
            part.pending = client.send("GET", f"/{part.name}", query=query, headers=headers)
        except UpstreamError as exc:
            part.breaker.record(part.permit, success=False)
            part.error = exc
        return part

    @staticmethod
    def _receive(part: Part) -> None:
        if part.pending is None or part.permit is None:
            return
        try:
            part.response = part.pending.result()
        except UpstreamError as exc:
            part.breaker.record(part.permit, success=False)
            part.error = exc
            return
        finally:
            part.elapsed = time.perf_counter() - part.started
            metrics.add_metric(
                name="UpstreamLatency", unit=MetricUnit.Milliseconds, value=part.elapsed * 1000
            )
        part.breaker.record(part.permit, success=part.response.status < 500)
        if 200 <= part.response.status < 300:
            part.items = _items(part.response.body, part.name)

    def _answer(
        self, project_id: str, tickets: Part, assignments: Part, decision: Decision
    ) -> Result:
        degraded: list[str] = []
        if assignments.items is None:
            degraded.append("assignments")
            logger.warning("board served without assignments: %s", _reason(assignments))
        logger.info(
            "board",
            extra={
                "status": 200,
                "project_id": project_id,
                "tickets_ms": round(tickets.elapsed * 1000, 2),
                "assignments_ms": round(assignments.elapsed * 1000, 2),
                "degraded": degraded,
            },
        )
        payload = {
            "projectId": project_id,
            "tickets": tickets.items,
            "assignments": assignments.items or [],
            "degraded": degraded,
        }
        return json_result(200, payload, decision.headers())

    def _without_tickets(self, tickets: Part, decision: Decision | None) -> Result:
        logger.warning("board failed: %s", _reason(tickets))
        headers = decision.headers() if decision is not None else {}
        if tickets.retry_after is not None:
            seconds = max(1, int(tickets.retry_after + 0.999))
            return error_result(
                503, "Service Unavailable", {**headers, "retry-after": str(seconds)}
            )
        if tickets.error is not None:
            return error_result(tickets.error.status, tickets.error.client_message, headers)
        response = tickets.response
        assert response is not None
        if 400 <= response.status < 500:
            return upstream_result(
                response, allowed_origin=self.settings.frontend_origin, extra_headers=headers
            )
        return error_result(502, "Bad Gateway", headers)


def _project_id(event: Mapping[str, Any]) -> str | None:
    parameters = event.get("pathParameters")
    value = parameters.get("projectId") if isinstance(parameters, Mapping) else None
    if isinstance(value, str) and _PROJECT_ID.fullmatch(value):
        return value
    return None


def _items(body: bytes, name: str) -> list[Any] | None:
    """A service's list: the body itself, or its ``<name>`` or ``items`` member."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(document, dict):
        document = document.get(name, document.get("items"))
    return document if isinstance(document, list) else None


def _reason(part: Part) -> str:
    if part.retry_after is not None:
        return f"{part.name} circuit open"
    if part.error is not None:
        return f"{part.name}: {part.error}"
    if part.response is not None:
        return f"{part.name} answered {part.response.status} without a list"
    return f"{part.name}: no answer"


_instance = WarmInstance(lambda: Board(BoardSettings.from_env()))
reset = _instance.reset


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> Result:
    """Lambda entry point (``board.handler``)."""
    return answer(_instance, event, "board failed")

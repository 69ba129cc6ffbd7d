"""The board: two services fetched in parallel, degraded when the Assignment service fails."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import board
import pytest
from board import Board, BoardSettings

from devstack.services import free_port
from gateway.breaker import CircuitBreaker
from gateway.ratelimit import Policy
from gateway.redis_client import reset_redis
from gateway.upstream import default_pool
from tests.conftest import load_event
from tests.support.upstreams import LambdaContext, Upstream, json_answer, slow, status
from tests.unit.conftest import Parts

TICKETS = [{"id": "t-1", "title": "Fix login", "status": "open"}]
ASSIGNMENTS = [{"ticketId": "t-1", "userId": "u-42"}]
MakeBoard = Callable[..., Board]


@pytest.fixture
def make_board(gateway_parts: Parts) -> Iterator[MakeBoard]:
    def make(
        tickets_url: str,
        assignments_url: str,
        *,
        timeout: float = 2.0,
        limit: str = "100/60",
        threshold: int = 5,
        cooldown: float = 30,
    ) -> Board:
        client, pool = gateway_parts()
        settings = BoardSettings(
            tickets_url, assignments_url, timeout=timeout, rate_limit=Policy.parse(limit, "board")
        )
        return Board(
            settings,
            redis=client,
            pool=pool,
            tickets_breaker=CircuitBreaker(
                "tickets", client=client, failure_threshold=threshold, cooldown=cooldown
            ),
            assignments_breaker=CircuitBreaker(
                "assignments", client=client, failure_threshold=threshold, cooldown=cooldown
            ),
        )

    yield make
    board.metrics.clear_metrics()  # Board.handle adds metrics that only the handler flushes


def _body(result: dict[str, Any]) -> Any:
    return json.loads(result["body"])


def test_board_fetches_both_services_in_parallel(make_board: MakeBoard) -> None:
    # GIVEN two upstreams that answer only once both hold a request: a sequential board would
    # leave the first waiting at the barrier until it breaks, and get no answer from it.
    barrier = threading.Barrier(2, timeout=3)
    with (
        Upstream(json_answer(TICKETS), barrier=barrier) as tickets,
        Upstream(json_answer(ASSIGNMENTS), barrier=barrier) as assignments,
    ):
        result = make_board(tickets.url, assignments.url, timeout=5).handle(
            load_event("http-board")
        )
    assert result["statusCode"] == 200
    assert _body(result) == {
        "projectId": "p-1",
        "tickets": TICKETS,
        "assignments": ASSIGNMENTS,
        "degraded": [],
    }
    assert not barrier.broken


def test_board_sends_the_callers_identity_and_project_to_both(make_board: MakeBoard) -> None:
    event = load_event("http-board")
    event["headers"]["x-user-id"] = "admin"
    with (
        Upstream(json_answer(TICKETS)) as tickets,
        Upstream(json_answer({"assignments": ASSIGNMENTS})) as assignments,
    ):
        result = make_board(tickets.url, assignments.url).handle(event)
    assert _body(result)["assignments"] == ASSIGNMENTS
    for upstream, path in ((tickets, "/tickets"), (assignments, "/assignments")):
        seen = upstream.requests[0]
        assert seen.target == f"{path}?projectId=p-1"
        assert seen.header("x-user-id") == ["u-42"]
        assert seen.header("x-user-roles") == ["member"]
        assert seen.header("x-request-id") == [event["requestContext"]["requestId"]]


@pytest.mark.parametrize("projects", ["p-2,p-7", "", None])
def test_board_forbids_a_project_missing_from_the_token(
    make_board: MakeBoard, projects: str | None
) -> None:
    event = load_event("http-board")
    claims = event["requestContext"]["authorizer"]["lambda"]
    if projects is None:
        del claims["projects"]
    else:
        claims["projects"] = projects
    with Upstream(json_answer(TICKETS)) as tickets, Upstream(json_answer([])) as assignments:
        result = make_board(tickets.url, assignments.url).handle(event)
    assert result["statusCode"] == 403
    assert _body(result) == {"message": "Forbidden"}
    assert tickets.requests == []
    assert assignments.requests == []


def test_board_prefix_of_a_listed_project_is_not_that_project(make_board: MakeBoard) -> None:
    event = load_event("http-board")
    event["pathParameters"]["projectId"] = "p"
    with Upstream(json_answer(TICKETS)) as tickets, Upstream(json_answer([])) as assignments:
        result = make_board(tickets.url, assignments.url).handle(event)
    assert result["statusCode"] == 403


@pytest.mark.parametrize("project_id", ["", "../p-1", "p-1&projectId=p-2", "a" * 200, None])
def test_board_refuses_a_malformed_project_id(
    make_board: MakeBoard, project_id: str | None
) -> None:
    event = load_event("http-board")
    event["pathParameters"] = {"projectId": project_id} if project_id is not None else None
    event["requestContext"]["authorizer"]["lambda"]["projects"] = f"p-1,{project_id}"
    with Upstream(json_answer(TICKETS)) as tickets, Upstream(json_answer([])) as assignments:
        result = make_board(tickets.url, assignments.url).handle(event)
    assert result["statusCode"] == 400
    assert tickets.requests == []


@pytest.mark.parametrize("failure", ["error", "timeout", "refused", "not-a-list"])
def test_board_degrades_when_assignments_fail(make_board: MakeBoard, failure: str) -> None:
    behaviours = {
        "error": status(500),
        "timeout": slow(2.0),
        "not-a-list": json_answer({"oops": True}),
    }
    with Upstream(json_answer(TICKETS)) as tickets, Upstream(behaviours.get(failure)) as other:
        url = f"http://127.0.0.1:{free_port()}" if failure == "refused" else other.url
        result = make_board(tickets.url, url, timeout=0.4).handle(load_event("http-board"))
    assert result["statusCode"] == 200
    assert _body(result) == {
        "projectId": "p-1",
        "tickets": TICKETS,
        "assignments": [],
        "degraded": ["assignments"],
    }


def test_board_with_the_assignments_breaker_open_spares_that_service(
    make_board: MakeBoard,
) -> None:
    with Upstream(json_answer(TICKETS)) as tickets, Upstream(status(503)) as assignments:
        gateway = make_board(tickets.url, assignments.url, threshold=2)
        for _ in range(2):
            gateway.handle(load_event("http-board"))
        calls = len(assignments.requests)
        result = gateway.handle(load_event("http-board"))
    assert calls == 2
    assert len(assignments.requests) == 2
    assert result["statusCode"] == 200
    assert _body(result)["degraded"] == ["assignments"]
    assert _body(result)["tickets"] == TICKETS


def test_board_answers_503_with_retry_after_when_the_tickets_breaker_is_open(
    make_board: MakeBoard,
) -> None:
    with Upstream(status(500)) as tickets, Upstream(json_answer([])) as assignments:
        gateway = make_board(tickets.url, assignments.url, threshold=2, cooldown=20)
        first = [gateway.handle(load_event("http-board"))["statusCode"] for _ in range(2)]
        result = gateway.handle(load_event("http-board"))
    assert first == [502, 502]
    assert len(tickets.requests) == 2
    assert result["statusCode"] == 503
    assert _body(result) == {"message": "Service Unavailable"}
    assert 1 <= int(result["headers"]["retry-after"]) <= 20


def test_board_answers_504_when_the_tickets_service_times_out(make_board: MakeBoard) -> None:
    with Upstream(slow(2.0)) as tickets, Upstream(json_answer([])) as assignments:
        result = make_board(tickets.url, assignments.url, timeout=0.3).handle(
            load_event("http-board")
        )
    assert result["statusCode"] == 504
    assert _body(result) == {"message": "Gateway Timeout"}


def test_board_passes_on_a_client_error_of_the_tickets_service(make_board: MakeBoard) -> None:
    with (
        Upstream(json_answer({"error": "no such project"}, 404)) as tickets,
        Upstream(json_answer([])) as assignments,
    ):
        result = make_board(tickets.url, assignments.url).handle(load_event("http-board"))
    assert result["statusCode"] == 404
    assert _body(result) == {"error": "no such project"}


def test_board_is_rate_limited_per_user(make_board: MakeBoard) -> None:
    with Upstream(json_answer(TICKETS)) as tickets, Upstream(json_answer([])) as assignments:
        gateway = make_board(tickets.url, assignments.url, limit="1/60")
        first = gateway.handle(load_event("http-board"))
        second = gateway.handle(load_event("http-board"))
    assert first["statusCode"] == 200
    assert "RateLimit" in first["headers"]
    assert second["statusCode"] == 429
    assert "Retry-After" in second["headers"]
    assert len(tickets.requests) == 1


def test_board_handler_reads_its_environment(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_redis()
    board.reset()
    try:
        with Upstream(json_answer(TICKETS)) as tickets, Upstream(json_answer(ASSIGNMENTS)) as other:
            monkeypatch.setenv("TICKETS_URL", tickets.url)
            monkeypatch.setenv("ASSIGNMENTS_URL", other.url)
            result = board.handler(load_event("http-board"), LambdaContext())
    finally:
        board.reset()
        reset_redis()
        default_pool().close()
    assert result["statusCode"] == 200
    assert _body(result)["assignments"] == ASSIGNMENTS

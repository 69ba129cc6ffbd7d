"""The whole dev stack end to end over HTTP: the project's template and real handlers in the
emulator, the demo services, a real Redis and a real Kafka-protocol broker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from tests.e2e.stack import Stack, running_stack

# The stack's Kafka event source mapping runs kafka-python in this process, and kafka-python 3.0
# can leave a socket unclosed when it stops; running_stack collects garbage while these filters
# still apply, so that the ResourceWarning does not land on a later test or the session's end.
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def stack(redis_service: Any, kafka_bootstrap: str) -> Iterator[Stack]:
    redis_url = f"redis://{redis_service.address}/5"
    with running_stack(redis_url, kafka_bootstrap, wait_for_mapping=False) as running:
        yield running


def test_devstack_alice_logs_in_creates_ticket_and_reads_board(stack: Stack) -> None:
    token = stack.login("alice")
    status, _, me = stack.call("GET", "/auth/me", token=token)
    assert (status, me["userId"]) == (200, "alice")

    status, _, ticket = stack.call(
        "POST", "/tickets", {"projectId": "p-1", "title": "Written by the e2e test"}, token
    )
    assert status == 201, ticket
    assert ticket["status"] == "todo"

    status, headers, board = stack.call("GET", "/projects/p-1/board", token=token)
    assert status == 200, board
    assert board["projectId"] == "p-1"
    assert ticket["id"] in {item["id"] for item in board["tickets"]}
    assert board["degraded"] == []
    assert "ratelimit" in headers


def test_devstack_bob_cannot_read_project_he_is_not_in(stack: Stack) -> None:
    token = stack.login("bob")
    status, _, body = stack.call("GET", "/projects/p-1/board", token=token)
    assert status == 403, body
    status, _, _ = stack.call("GET", "/tickets?projectId=p-1", token=token)
    assert status == 403
    status, _, board = stack.call("GET", "/projects/p-2/board", token=token)
    assert status == 200
    assert {item["projectId"] for item in board["tickets"]} == {"p-2"}


def test_devstack_refuses_missing_and_forged_tokens(stack: Stack) -> None:
    status, _, body = stack.call("GET", "/projects/p-1/board")
    assert (status, body) == (401, {"message": "Unauthorized"})
    token = stack.login("alice")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    status, _, body = stack.call("GET", "/projects/p-1/board", token=forged)
    assert (status, body) == (403, {"message": "Forbidden"})


def test_devstack_answers_preflight_for_the_board_page_origin(stack: Stack) -> None:
    origin = stack.dev.settings.frontend_origin
    status, headers, _ = stack.call(
        "OPTIONS",
        "/projects/p-1/board",
        headers={"origin": origin, "access-control-request-method": "GET"},
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == origin


def test_devstack_login_refuses_wrong_password_and_refresh_token_works_once(stack: Stack) -> None:
    status, _, body = stack.call("POST", "/auth/login", {"username": "alice", "password": "nope"})
    assert status == 401, body
    status, _, login = stack.call(
        "POST", "/auth/login", {"username": "alice", "password": "alice-password"}
    )
    assert status == 200
    refresh = {"refreshToken": login["refreshToken"]}
    status, _, renewed = stack.call("POST", "/auth/refresh", refresh)
    assert status == 200, renewed
    status, _, me = stack.call("GET", "/auth/me", token=renewed["accessToken"])
    assert (status, me["userId"]) == (200, "alice")
    status, _, _ = stack.call("POST", "/auth/refresh", refresh)
    assert status == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/tickets", {"projectId": "p-1"}),
        ("POST", "/tickets", {"projectId": "p-1", "title": "x", "status": "lost"}),
        ("PATCH", "/tickets/t-1", {"status": "lost"}),
        ("PATCH", "/tickets/t-1", {"colour": "blue"}),
    ],
)
def test_devstack_tickets_answer_bad_input_with_400(
    stack: Stack, method: str, path: str, body: dict[str, str]
) -> None:
    token = stack.login("alice")
    status, _, answer = stack.call(method, path, body, token)
    assert status == 400, answer
    assert answer["message"]


def test_devstack_ticket_change_produces_ticket_updated_record(
    stack: Stack, kafka_bootstrap: str
) -> None:
    token = stack.login("alice")
    status, _, ticket = stack.call("PATCH", "/tickets/t-2", {"status": "done"}, token)
    assert status == 200, ticket
    consumer = KafkaConsumer(
        "ticket.updated",
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    try:
        deadline = time.monotonic() + 20
        found = None
        while found is None and time.monotonic() < deadline:
            for record in consumer:
                value = json.loads(record.value)
                if value["ticket"]["id"] == "t-2" and value["ticket"]["status"] == "done":
                    found = (record.key, value)
    finally:
        consumer.close()
    assert found is not None
    key, value = found
    assert key == b"p-1"
    assert value["type"] == "ticket.updated"
    assert value["projectId"] == "p-1"
    assert set(value) == {"type", "projectId", "ticket", "at"}


def test_devstack_ctrl_c_stops_what_it_started_and_nothing_else(redis_service: Any) -> None:
    """GIVEN make run with REDIS_URL set (a Redis it must leave alone) and no broker named,
    WHEN it gets SIGINT, THEN its broker, demo services and HTTP API are gone; the Redis lives."""
    env = {key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP_SERVERS"}
    env["REDIS_URL"] = f"redis://{redis_service.address}/6"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "devstack", "--port", "0", "--ws-port", "0",
            "--board-port", "-1", "--log-level", "WARNING",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    addresses: dict[str, str] = {}
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line or line.startswith("METHOD"):
                break
            found = re.match(r"\s+(HTTP API|demo Auth|Kafka|Redis)\s+(\S+)", line)
            if found:
                addresses[found.group(1)] = found.group(2)
        assert set(addresses) == {"HTTP API", "demo Auth", "Kafka", "Redis"}, addresses
        assert addresses["Redis"] == env["REDIS_URL"]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    for name in ("HTTP API", "demo Auth", "Kafka"):
        host, _, port = addresses[name].split("//")[-1].rstrip("/").rpartition(":")
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=2).close()
    assert redis_service.alive()

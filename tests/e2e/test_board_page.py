"""The live board page in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser
is downloaded), against the whole dev stack: log in, see the board, and watch cards move when a
ticket changes, whether the test PATCHes it or another browser does."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.e2e.stack import Stack, running_stack

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def stack(redis_service: Any, kafka_bootstrap: str) -> Iterator[Stack]:
    with running_stack(f"redis://{redis_service.address}/7", kafka_bootstrap, board=True) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def card(status: str, ticket_id: str) -> str:
    return f'.column[data-status="{status}"] .card[data-ticket-id="{ticket_id}"]'


def logged_in_page(browser: Any, stack: Stack, username: str) -> Any:
    """A fresh browser context on the board page, logged in, its socket live."""
    page = browser.new_context().new_page()
    page.goto(stack.board_url)
    page.select_option("#username", username)
    page.fill("#password", f"{username}-password")
    page.click("#login button[type=submit]")
    page.wait_for_selector('#live[data-state="live"]', timeout=WAIT_MS)
    return page


def test_board_page_logs_in_and_shows_the_project_board_by_status(
    browser: Any, stack: Stack
) -> None:
    page = logged_in_page(browser, stack, "alice")

    columns = page.eval_on_selector_all(".column", "cs => cs.map(c => c.dataset.status)")
    done = page.eval_on_selector_all(
        '.column[data-status="done"] .card', "cs => cs.map(c => c.dataset.ticketId)"
    )
    assert columns == ["todo", "in-progress", "done"]
    assert "t-1" in done
    assert page.inner_text("#who") == "signed in as alice"
    page.context.close()


def test_board_page_moves_the_card_when_a_patch_changes_the_ticket(
    browser: Any, stack: Stack
) -> None:
    page = logged_in_page(browser, stack, "alice")
    page.wait_for_selector(card("in-progress", "t-2"), timeout=WAIT_MS)

    status, _, _ = stack.call(
        "PATCH", "/tickets/t-2", {"status": "done"}, token=stack.login("alice")
    )

    assert status == 200
    page.wait_for_selector(card("done", "t-2"), timeout=WAIT_MS)
    assert page.query_selector(card("in-progress", "t-2")) is None
    page.context.close()


def test_board_page_sees_a_change_made_in_another_browser(browser: Any, stack: Stack) -> None:
    watcher = logged_in_page(browser, stack, "alice")
    mover = logged_in_page(browser, stack, "alice")
    mover.wait_for_selector(card("todo", "t-3"), timeout=WAIT_MS)

    mover.select_option(f"{card('todo', 't-3')} select", "in-progress")

    watcher.wait_for_selector(card("in-progress", "t-3"), timeout=WAIT_MS)
    mover.wait_for_selector(card("in-progress", "t-3"), timeout=WAIT_MS)
    watcher.context.close()
    mover.context.close()


def test_board_page_drops_an_event_id_it_has_already_applied(browser: Any, stack: Stack) -> None:
    """Delivery is at least once: a repeated eventId must not move the card again."""
    assert stack.dev.realtime is not None
    server = stack.dev.realtime.servers[0]
    known = {connection.connection_id for connection in server.registry}
    page = logged_in_page(browser, stack, "bob")
    (connection_id,) = {c.connection_id for c in server.registry} - known
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=server.management_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )

    def deliver(event_id: str, ticket_id: str, title: str, status: str) -> None:
        message = {
            "type": "ticket.updated",
            "eventId": event_id,
            "projectId": "p-2",
            "ticket": {"id": ticket_id, "title": title, "status": status},
            "at": "2026-01-01T00:00:00Z",
        }
        client.post_to_connection(ConnectionId=connection_id, Data=json.dumps(message).encode())

    deliver("ticket.updated-0-999998", "t-5", "Fix the login page", "done")
    page.wait_for_selector(card("done", "t-5"), timeout=WAIT_MS)
    # The same eventId again, as a redelivery brings it; then a new one. Messages arrive in
    # order, so once the new one has moved its card, the repeated one has been read.
    deliver("ticket.updated-0-999998", "t-5", "Fix the login page", "todo")
    deliver("ticket.updated-0-999999", "t-4", "Write the release notes", "done")
    page.wait_for_selector(card("done", "t-4"), timeout=WAIT_MS)

    assert page.query_selector(card("done", "t-5")) is not None
    assert page.query_selector(card("todo", "t-5")) is None
    page.context.close()


def test_board_page_shows_when_the_board_is_degraded(browser: Any, stack: Stack) -> None:
    assert stack.dev.demo is not None
    assignments = stack.dev.demo.assignments_url
    status, _, _ = stack.call("POST", "/_admin/mode", {"mode": "fail"}, base=assignments)
    assert status == 200
    try:
        page = logged_in_page(browser, stack, "alice")
        page.wait_for_selector("#degraded:not([hidden])", timeout=WAIT_MS)
        banner = page.inner_text("#degraded")
        tickets = page.eval_on_selector_all(".card", "cs => cs.length")
    finally:
        stack.call("POST", "/_admin/mode", {"mode": "ok"}, base=assignments)

    assert "assignments" in banner
    assert tickets >= 3
    page.context.close()

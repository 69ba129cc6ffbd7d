"""The HTTP API's Lambda REQUEST authorizers, through a real socket.

The test authorizer (tests/emulator/app/functions/auth) answers by token and reports how many
calls its worker served, which shows whether API Gateway's cache answered instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import load_event
from tests.emulator.harness import RunningEmulator, app_emulator, running


@pytest.fixture
def gateway() -> Iterator[RunningEmulator]:
    with running(app_emulator(concurrency=1)) as running_emulator:
        yield running_emulator


def _calls(gateway: RunningEmulator, token: str) -> int:
    status, body = gateway.json("GET", "/items/1", headers={"Authorization": token})
    assert status == 200, body
    return int(body["event"]["requestContext"]["authorizer"]["lambda"]["calls"])


def test_authorizer_missing_identity_source_gives_401_without_invoking(
    gateway: RunningEmulator,
) -> None:
    status, body = gateway.json("GET", "/items/1")
    assert (status, body) == (401, {"message": "Unauthorized"})
    status, body = gateway.json("GET", "/items/1", headers={"Authorization": ""})
    assert status == 401
    assert gateway.emulator.runtime.pool("AuthFunction").spawned == 1
    assert _calls(gateway, "allow-first") == 1  # the two refusals never reached the function


def test_authorizer_allow_puts_context_into_route_event(gateway: RunningEmulator) -> None:
    status, body = gateway.json("GET", "/items/42", headers={"Authorization": "allow-alice"})
    assert status == 200
    event = body["event"]
    context = event["requestContext"]["authorizer"]["lambda"]
    assert (context["user"], context["calls"]) == ("alice", 1)
    assert event["pathParameters"] == {"id": "42"}


def test_authorizer_event_has_the_keys_of_the_reference_event(gateway: RunningEmulator) -> None:
    # Reference: events/authorizer-http.json (AWS's payload format 2.0 authorizer example); this
    # request has no cookies, query string or stage variables, which API Gateway then leaves out.
    reference = set(load_event("authorizer-http")) - {"cookies", "queryStringParameters"}
    reference -= {"stageVariables"}
    status, body = gateway.json("GET", "/items/42", headers={"Authorization": "allow-keys"})
    assert status == 200
    context = body["event"]["requestContext"]["authorizer"]["lambda"]
    assert set(context["eventKeys"].split(",")) == reference
    assert context["identitySource"] == "allow-keys"


def test_authorizer_deny_gives_403_forbidden(gateway: RunningEmulator) -> None:
    status, body = gateway.json("GET", "/items/1", headers={"Authorization": "deny"})
    assert (status, body) == (403, {"message": "Forbidden"})


@pytest.mark.parametrize("token", ["error", "garbage"])
def test_authorizer_error_or_bad_answer_gives_500(gateway: RunningEmulator, token: str) -> None:
    status, body = gateway.json("GET", "/items/1", headers={"Authorization": token})
    assert (status, body) == (500, {"message": "Internal Server Error"})


def test_authorizer_caches_decision_by_identity_source_value(gateway: RunningEmulator) -> None:
    assert _calls(gateway, "allow-alice") == 1
    assert _calls(gateway, "allow-alice") == 1  # cached: the function was not called again
    assert _calls(gateway, "allow-bob") == 2
    status, _ = gateway.json("GET", "/items/1", headers={"Authorization": "deny"})
    assert status == 403
    assert _calls(gateway, "allow-carol") == 4  # the deny cost one call
    status, _ = gateway.json("GET", "/items/1", headers={"Authorization": "deny"})
    assert status == 403
    assert _calls(gateway, "allow-dave") == 5  # the second deny came from the cache


def test_authorizer_cache_entry_expires_after_ttl() -> None:
    emulator = app_emulator(concurrency=1, parameter_overrides={"AuthTtl": "1"})
    with running(emulator) as gateway:
        assert _calls(gateway, "allow-alice") == 1
        assert _calls(gateway, "allow-alice") == 1
        time.sleep(1.2)
        assert _calls(gateway, "allow-alice") == 2


def test_policy_authorizer_allows_and_denies_by_iam_statement(gateway: RunningEmulator) -> None:
    status, body = gateway.json("GET", "/policy?tenant=t1", headers={"X-Token": "allow-erin"})
    assert status == 200
    assert body["event"]["requestContext"]["authorizer"]["lambda"]["user"] == "erin"
    status, body = gateway.json("GET", "/policy?tenant=t1", headers={"X-Token": "deny"})
    assert (status, body) == (403, {"message": "Forbidden"})


def test_policy_authorizer_needs_every_identity_source(gateway: RunningEmulator) -> None:
    status, body = gateway.json("GET", "/policy", headers={"X-Token": "allow-erin"})
    assert (status, body) == (401, {"message": "Unauthorized"})
    status, _ = gateway.json("GET", "/policy?tenant=t1")
    assert status == 401

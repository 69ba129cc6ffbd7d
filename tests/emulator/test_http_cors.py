"""HttpApi CORS through a real socket: preflights answered without a function, headers for
allowed origins only (the test template allows exactly http://127.0.0.1:5173)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulator.harness import RunningEmulator, app_emulator, running

ALLOWED = "http://127.0.0.1:5173"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningEmulator]:
    with running(app_emulator()) as running_emulator:
        yield running_emulator


def _preflight(gateway: RunningEmulator, origin: str, method: str = "PATCH", headers: str = ""):
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return gateway.request("OPTIONS", "/items/1", headers=asked)


def test_cors_preflight_from_allowed_origin_is_answered_from_configuration(
    gateway: RunningEmulator,
) -> None:
    before = gateway.emulator.runtime.pool("EchoFunction").spawned
    status, headers, body = _preflight(gateway, ALLOWED, headers="Authorization, Content-Type")
    assert status == 204
    assert body == b""
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["access-control-allow-methods"] == "GET,POST,PATCH"
    assert headers["access-control-allow-headers"] == "authorization,content-type"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-allow-credentials"] == "true"
    assert gateway.emulator.runtime.pool("EchoFunction").spawned == before


@pytest.mark.parametrize(
    ("origin", "method", "asked_headers"),
    [
        ("http://evil.example", "PATCH", ""),
        ("null", "GET", ""),
        (ALLOWED, "DELETE", ""),
        (ALLOWED, "GET", "x-not-allowed"),
    ],
)
def test_cors_preflight_refused_carries_no_cors_headers(
    gateway: RunningEmulator, origin: str, method: str, asked_headers: str
) -> None:
    status, headers, _ = _preflight(gateway, origin, method, asked_headers)
    assert status == 204
    assert not [name for name in headers if name.startswith("access-control-")]


def test_cors_headers_added_to_response_for_allowed_origin_only(gateway: RunningEmulator) -> None:
    status, headers, _ = gateway.request("GET", "/public/x", headers={"Origin": ALLOWED})
    assert status == 200
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["access-control-expose-headers"] == "x-request-id"
    status, headers, _ = gateway.request(
        "GET", "/public/x", headers={"Origin": "http://evil.example"}
    )
    assert status == 200
    assert "access-control-allow-origin" not in headers


def test_cors_headers_also_on_gateway_errors_for_allowed_origin(gateway: RunningEmulator) -> None:
    status, headers, _ = gateway.request("GET", "/items/1", headers={"Origin": ALLOWED})
    assert status == 401
    assert headers["access-control-allow-origin"] == ALLOWED


def test_cors_replaces_cors_headers_the_function_returns(gateway: RunningEmulator) -> None:
    status, headers, _ = gateway.request(
        "GET", "/behave/own-cors", headers={"Origin": "http://evil.example"}
    )
    assert status == 200
    assert headers["x-kept"] == "yes"
    assert "access-control-allow-origin" not in headers

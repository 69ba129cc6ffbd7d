"""An HTTP API declared as raw AWS::ApiGatewayV2 resources (Api, Integration, Authorizer, Route)
is served like a SAM HttpApi: routes, integration timeout, authorizer and CORS come from them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localgw.app import Emulator
from localgw.template import load_template
from tests.emulator.harness import RunningEmulator, running

RAW_TEMPLATE = Path(__file__).resolve().parent / "raw_app" / "template.yaml"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningEmulator]:
    emulator = Emulator.from_template(RAW_TEMPLATE, port=0, watch_interval=None)
    with running(emulator) as running_emulator:
        yield running_emulator


def test_raw_api_model_reads_routes_integration_and_authorizer() -> None:
    api = load_template(RAW_TEMPLATE, environ={}).http_apis[0]
    routes = {route.route_key: route for route in api.routes}
    assert set(routes) == {"GET /raw/{id}", "$default"}
    assert routes["GET /raw/{id}"].function_id == "EchoFunction"
    assert routes["GET /raw/{id}"].authorizer == "TokenAuthorizer"
    assert routes["GET /raw/{id}"].timeout_ms == 5000
    assert routes["$default"].authorizer is None
    authorizer = api.authorizers["TokenAuthorizer"]
    assert (authorizer.function_id, authorizer.simple_responses) == ("AuthFunction", True)
    assert api.cors is not None
    assert api.cors.allow_origins == ("https://app.example.com",)


def test_raw_api_route_runs_behind_its_authorizer(gateway: RunningEmulator) -> None:
    status, body = gateway.json("GET", "/raw/7")
    assert (status, body) == (401, {"message": "Unauthorized"})
    status, body = gateway.json("GET", "/raw/7", headers={"Authorization": "deny"})
    assert status == 403
    status, body = gateway.json("GET", "/raw/7", headers={"Authorization": "allow-raw"})
    assert status == 200
    event = body["event"]
    assert event["routeKey"] == "GET /raw/{id}"
    assert event["pathParameters"] == {"id": "7"}
    assert event["requestContext"]["authorizer"]["lambda"]["user"] == "raw"


def test_raw_api_default_route_and_cors(gateway: RunningEmulator) -> None:
    status, headers, _ = gateway.request(
        "GET", "/anything", headers={"Origin": "https://app.example.com"}
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"

"""The authorizer against the demo Auth service over real HTTP: the two agree on tokens and keys.

The demo service (``demo/auth.py``) is what ``make run`` starts; if its tokens or its JWKS drifted
from what the authorizer accepts, the local gateway would refuse every login. This test logs in
through the service's own HTTP endpoint and hands the token to the handler, configured the way
the dev stack configures it (settings from the environment, keys from the service's JWKS URL).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import authorizer
import pytest

from demo.auth import AuthService
from demo.web import serve
from tests.conftest import load_event
from tests.support.jwt_keys import authorizer_environment

AUDIENCE = "syncroboard-api"
ISSUER = "http://127.0.0.1/auth"


@pytest.fixture
def auth_url() -> Iterator[str]:
    server = serve(AuthService(ISSUER, AUDIENCE).router(), "127.0.0.1", 0, "auth")
    url = f"http://127.0.0.1:{server.server_address[1]}/auth"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield url
    server.shutdown()
    server.server_close()
    thread.join(5)


def login(url: str, username: str, password: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


@pytest.fixture
def configured(auth_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    environment = authorizer_environment(
        f"{auth_url}/.well-known/jwks.json", JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(authorizer, "_authenticator", None)
    return auth_url


def test_demo_auth_token_is_allowed_on_both_apis_with_the_users_context(configured: str) -> None:
    token = login(configured, "alice", "alice-password")["accessToken"]
    http = load_event("authorizer-http")
    http["headers"]["authorization"] = f"Bearer {token}"
    websocket = load_event("authorizer-websocket-connect")
    websocket["queryStringParameters"]["token"] = token
    websocket["multiValueQueryStringParameters"]["token"] = [token]

    http_answer = authorizer.handler(http, None)
    websocket_answer = authorizer.handler(websocket, None)

    context = {"userId": "alice", "roles": "member", "projects": "p-1"}
    assert http_answer == {"isAuthorized": True, "context": context}
    assert websocket_answer["context"] == context
    assert websocket_answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_demo_auth_token_for_another_audience_is_denied(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_AUDIENCE", "some-other-api")
    token = login(configured, "bob", "bob-password")["accessToken"]
    event = load_event("authorizer-http")
    event["headers"]["authorization"] = f"Bearer {token}"

    assert authorizer.handler(event, None) == {"isAuthorized": False}

"""The authorizer handler, driven by the event files: answers for both APIs, header case, logs.

Keys come from a real JWKS server on a loopback port; settings from the environment.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import authorizer
import pytest

from gateway.tokens import Authenticator, SettingsSource
from tests.conftest import ROOT, load_event
from tests.support.jwt_keys import (
    JwksServer,
    authorizer_environment,
    captured_json_log,
    ec_key,
    make_token,
    rsa_key,
)

Configure = Callable[..., None]


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer([rsa_key("rsa-1"), ec_key("ec-1")]) as server:
        yield server


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Set the authorizer's environment and start it cold, as a new Lambda instance would."""

    def apply(jwks_url: str = "", **values: str) -> None:
        for name, value in authorizer_environment(jwks_url, **values).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(authorizer, "_authenticator", None)

    return apply


def http_event(value: str | None, *, header: str = "authorization") -> dict[str, Any]:
    name = "authorizer-http" if header.islower() else "authorizer-http-sam-local"
    event = load_event(name)
    event["headers"].pop("authorization", None)
    event["headers"].pop("Authorization", None)
    if value is not None:
        event["headers"][header] = value
        event["identitySource"] = [value]
    return event


def websocket_event(token: str | None) -> dict[str, Any]:
    event = load_event("authorizer-websocket-connect")
    if token is None:
        event["queryStringParameters"] = {}
        event["multiValueQueryStringParameters"] = {}
    else:
        event["queryStringParameters"]["token"] = token
        event["multiValueQueryStringParameters"]["token"] = [token]
    return event


def test_http_event_with_valid_rs256_token_is_allowed_with_context(
    jwks: JwksServer, configure: Configure
) -> None:
    configure(jwks.url)
    token = make_token(rsa_key("rsa-1"), sub="u-7", roles=["admin"], projects=["p-1", "p-3"])

    answer = authorizer.handler(http_event(f"Bearer {token}"), None)

    assert answer == {
        "isAuthorized": True,
        "context": {"userId": "u-7", "roles": "admin", "projects": "p-1,p-3"},
    }


def test_http_event_with_valid_hs256_token_is_allowed(configure: Configure) -> None:
    configure()
    token = make_token("test-shared-secret-of-at-least-32-bytes!")

    assert authorizer.handler(http_event(f"Bearer {token}"), None)["isAuthorized"] is True


@pytest.mark.parametrize("header", ["authorization", "Authorization", "AUTHORIZATION"])
def test_http_event_header_name_matches_in_any_case(
    jwks: JwksServer, configure: Configure, header: str
) -> None:
    configure(jwks.url)
    token = make_token(ec_key("ec-1"))

    answer = authorizer.handler(http_event(f"Bearer {token}", header=header), None)

    assert answer["isAuthorized"] is True


def test_http_event_from_sam_local_file_is_allowed(jwks: JwksServer, configure: Configure) -> None:
    configure(jwks.url)
    event = load_event("authorizer-http-sam-local")
    event["headers"]["Authorization"] = f"Bearer {make_token(rsa_key('rsa-1'))}"

    assert authorizer.handler(event, None)["isAuthorized"] is True


def test_websocket_connect_with_valid_token_gets_allow_policy_and_context(
    jwks: JwksServer, configure: Configure
) -> None:
    configure(jwks.url)
    event = websocket_event(make_token(rsa_key("rsa-1"), sub="u-9", roles=[], projects=["p-2"]))

    answer = authorizer.handler(event, None)

    assert answer == {
        "principalId": "u-9",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": event["methodArn"],
                }
            ],
        },
        "context": {"userId": "u-9", "roles": "", "projects": "p-2"},
    }


def test_websocket_connect_without_token_gets_deny_policy(
    jwks: JwksServer, configure: Configure
) -> None:
    configure(jwks.url)
    event = websocket_event(None)

    answer = authorizer.handler(event, None)

    statement = answer["policyDocument"]["Statement"][0]
    assert (statement["Effect"], statement["Resource"]) == ("Deny", event["methodArn"])
    assert "context" not in answer


def test_websocket_connect_with_token_given_twice_is_denied(
    jwks: JwksServer, configure: Configure
) -> None:
    configure(jwks.url)
    token = make_token(rsa_key("rsa-1"))
    event = websocket_event(token)
    event["multiValueQueryStringParameters"]["token"] = [token, token]

    with captured_json_log(authorizer.logger) as lines:
        answer = authorizer.handler(event, None)

    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert lines[0]["reason"] == "credentials"


def test_http_event_without_authorization_header_is_denied(configure: Configure) -> None:
    configure()

    with captured_json_log(authorizer.logger) as lines:
        answer = authorizer.handler(http_event(None), None)

    assert answer == {"isAuthorized": False}
    assert [line["reason"] for line in lines] == ["missing_token"]


def test_http_event_with_two_authorization_headers_in_different_case_is_denied(
    configure: Configure,
) -> None:
    configure()
    token = make_token("test-shared-secret-of-at-least-32-bytes!")
    event = http_event(f"Bearer {token}")
    event["headers"]["Authorization"] = "Bearer something-else"

    assert authorizer.handler(event, None) == {"isAuthorized": False}


def test_http_event_with_header_name_that_is_not_a_string_still_finds_the_token(
    configure: Configure,
) -> None:
    configure()
    event = http_event(f"Bearer {make_token('test-shared-secret-of-at-least-32-bytes!')}")
    event["headers"][7] = "odd"

    assert authorizer.handler(event, None)["isAuthorized"] is True


def test_denial_logs_one_line_with_request_ids_and_never_the_token(
    jwks: JwksServer, configure: Configure
) -> None:
    configure(jwks.url)
    token = make_token(rsa_key("rsa-1"), exp=1)
    event = http_event(f"Bearer {token}")

    with captured_json_log(authorizer.logger) as lines:
        authorizer.handler(event, SimpleNamespace(aws_request_id="lambda-req-1"))

    assert len(lines) == 1
    line = lines[0]
    assert (line["level"], line["reason"], line["api"]) == ("INFO", "expired", "http")
    assert line["requestId"] == event["requestContext"]["requestId"]
    assert line["lambdaRequestId"] == "lambda-req-1"
    assert line["sourceIp"] == "198.51.100.7"
    assert line["route"] == event["routeArn"]
    assert token not in str(line)
    assert token.split(".")[1] not in str(line)


def test_allowed_request_logs_nothing_at_info(jwks: JwksServer, configure: Configure) -> None:
    configure(jwks.url)

    with captured_json_log(authorizer.logger) as lines:
        authorizer.handler(http_event(f"Bearer {make_token(rsa_key('rsa-1'))}"), None)

    assert lines == []


def test_allowed_request_logs_one_debug_line_at_debug_level(
    jwks: JwksServer, configure: Configure
) -> None:
    configure(jwks.url)
    previous = authorizer.logger.log_level
    authorizer.logger.setLevel("DEBUG")
    try:
        with captured_json_log(authorizer.logger) as lines:
            authorizer.handler(
                http_event(f"Bearer {make_token(rsa_key('rsa-1'), sub='u-3')}"), None
            )
    finally:
        authorizer.logger.setLevel(previous)

    assert [(line["level"], line["userId"]) for line in lines] == [("DEBUG", "u-3")]


def test_unreachable_key_set_denies_and_logs_warning_with_cause(configure: Configure) -> None:
    with JwksServer(mode="error") as broken:
        configure(broken.url)

        with captured_json_log(authorizer.logger) as lines:
            answer = authorizer.handler(http_event(f"Bearer {make_token(rsa_key('rsa-1'))}"), None)

    assert answer == {"isAuthorized": False}
    assert [(line["level"], line["reason"]) for line in lines] == [("WARNING", "jwks_fetch")]


def test_invalid_settings_deny_and_log_warning(configure: Configure) -> None:
    configure(JWT_ALGORITHMS="none")

    with captured_json_log(authorizer.logger) as lines:
        answer = authorizer.handler(http_event("Bearer a.b.c"), None)

    assert answer == {"isAuthorized": False}
    assert [(line["level"], line["reason"]) for line in lines] == [("WARNING", "settings")]


def test_unexpected_failure_denies_and_logs_error_with_traceback(
    configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure()

    def broken(self: Authenticator, token: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Authenticator, "authenticate", broken)

    with captured_json_log(authorizer.logger) as lines:
        answer = authorizer.handler(websocket_event("a.b.c"), None)

    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert lines[0]["level"] == "ERROR"
    assert "RuntimeError: a bug" in lines[0]["exception"]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"version": "1.0", "type": "REQUEST", "methodArn": "arn:x"},
        {"type": "TOKEN", "methodArn": "arn:x", "authorizationToken": "Bearer a.b.c"},
        ["not", "an", "object"],
    ],
)
def test_event_of_unknown_shape_is_denied_and_logged_as_error(
    configure: Configure, event: Any
) -> None:
    configure()

    with captured_json_log(authorizer.logger) as lines:
        answer = authorizer.handler(event, None)

    assert answer == {"isAuthorized": False}
    assert [line["level"] for line in lines] == ["ERROR"]


def test_authorizer_keeps_one_authenticator_and_one_jwks_fetch_while_warm(
    jwks: JwksServer, configure: Configure
) -> None:
    configure(jwks.url)

    for _ in range(3):
        authorizer.handler(http_event(f"Bearer {make_token(rsa_key('rsa-1'))}"), None)
        authorizer.handler(websocket_event(make_token(ec_key("ec-1"))), None)

    assert jwks.requests == 1
    assert isinstance(authorizer._authenticator, Authenticator)
    assert isinstance(authorizer._authenticator.source, SettingsSource)


def test_authorizer_import_loads_neither_boto3_nor_xray() -> None:
    # A fresh interpreter, as a cold Lambda start: what does importing the handler pull in?
    # Powertools imports the bare botocore package for its user-agent hook (well under 1 ms);
    # the client machinery (botocore.session, botocore.client) must stay out.
    heavy = ("boto3", "botocore.session", "botocore.client", "aws_xray_sdk")
    code = f"import sys, authorizer; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    paths = [str(ROOT / "layers" / "common"), str(ROOT / "functions" / "authorizer")]
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert result.stdout.strip() == "[]"

"""The attack corpus of issue 2: every entry is denied, through the handler, on both APIs.

Each test sends its token as an HTTP API ``Authorization: Bearer`` header and as a WebSocket
``token`` query string, and checks the deny, the single log line's reason code, and that the
token appears nowhere in the log. The settings are RS256 and ES256 from a real JWKS server, the
way the deployed gateway runs; the HS/RS confusion is also tried with HS256 configured alongside.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import authorizer
import pytest

from tests.conftest import load_event
from tests.support.jwt_keys import (
    JwksServer,
    authorizer_environment,
    b64url,
    captured_json_log,
    claims,
    ec_key,
    forge,
    make_token,
    rsa_key,
)

RSA = rsa_key("rsa-1")


@pytest.fixture
def jwks(monkeypatch: pytest.MonkeyPatch) -> Iterator[JwksServer]:
    """A JWKS server with the gateway's keys, and the authorizer configured for it, cold."""
    with JwksServer([RSA, ec_key("ec-1")]) as server:
        for name, value in authorizer_environment(server.url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(authorizer, "_authenticator", None)
        yield server


def denial(event: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    """(whether the answer denies, the log lines written while answering)."""
    with captured_json_log(authorizer.logger) as lines:
        answer = authorizer.handler(event, None)
    if "isAuthorized" in answer:
        return answer == {"isAuthorized": False}, lines
    return answer["policyDocument"]["Statement"][0]["Effect"] == "Deny", lines


def assert_denied(
    token: str, reason: str, *, header: str | None = None, websocket_reason: str | None = None
) -> None:
    """Deny on both APIs, one log line each with ``reason``, and no trace of the token."""
    http = load_event("authorizer-http")
    http["headers"]["authorization"] = f"Bearer {token}" if header is None else header
    websocket = load_event("authorizer-websocket-connect")
    websocket["queryStringParameters"]["token"] = token
    websocket["multiValueQueryStringParameters"]["token"] = [token]

    for event, expected in ((http, reason), (websocket, websocket_reason or reason)):
        denied, lines = denial(event)
        assert denied
        assert [line["reason"] for line in lines] == [expected]
        logged = str(lines)
        pieces = [part for part in (token, *token.split(".")) if len(part) > 8]
        assert not [piece for piece in pieces if piece[:64] in logged]


def test_authorizer_rejects_token_signed_with_none_alg(jwks: JwksServer) -> None:
    token = forge({"alg": "none", "typ": "JWT"}, claims())

    assert_denied(token, "algorithm")


def test_authorizer_rejects_none_alg_in_any_spelling(jwks: JwksServer) -> None:
    for alg in ("None", "NONE", "nOnE"):
        assert_denied(forge({"alg": alg, "kid": "rsa-1"}, claims()), "algorithm")


def test_authorizer_rejects_hs256_signed_with_rsa_public_key_as_secret(jwks: JwksServer) -> None:
    token = forge(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), hmac_key=RSA.public_pem()
    )

    assert_denied(token, "algorithm")


def test_authorizer_rejects_hs_rs_confusion_when_hs256_is_also_configured(
    jwks: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a shared secret configured too, HS256 is allowed, but only with that secret.
    monkeypatch.setenv("JWT_ALGORITHMS", "HS256,RS256")
    monkeypatch.setenv("JWT_SECRET", "test-shared-secret-of-at-least-32-bytes!")
    token = forge({"alg": "HS256", "kid": "rsa-1"}, claims(), hmac_key=RSA.public_pem())

    assert_denied(token, "signature")


def test_authorizer_rejects_kid_that_is_a_path(jwks: JwksServer) -> None:
    token = make_token(RSA, headers={"kid": "../../../../etc/passwd"})

    assert_denied(token, "kid")
    assert jwks.requests == 0


def test_authorizer_rejects_kid_that_is_an_absolute_path_as_unknown(jwks: JwksServer) -> None:
    # "/" belongs to base64 kids (Cognito's), so this one is looked up, and simply not found.
    token = make_token(RSA, headers={"kid": "/etc/passwd"})

    assert_denied(token, "unknown_kid")


def test_authorizer_rejects_kid_that_is_a_url(jwks: JwksServer) -> None:
    token = make_token(RSA, headers={"kid": "https://attacker.example/jwks.json"})

    assert_denied(token, "kid")
    assert jwks.requests == 0


def test_authorizer_ignores_jku_and_embedded_jwk_headers(jwks: JwksServer) -> None:
    attacker = rsa_key("attacker")
    with JwksServer([attacker]) as attacker_jwks:
        token = make_token(
            attacker, headers={"jku": attacker_jwks.url, "jwk": attacker.public_jwk()}
        )

        assert_denied(token, "unknown_kid")

    assert attacker_jwks.requests == 0


def test_authorizer_rejects_expired_token(jwks: JwksServer) -> None:
    now = int(time.time())

    assert_denied(make_token(RSA, iat=now - 7200, nbf=now - 7200, exp=now - 3600), "expired")


def test_authorizer_rejects_token_with_nbf_in_future(jwks: JwksServer) -> None:
    assert_denied(make_token(RSA, nbf=int(time.time()) + 3600), "not_yet_valid")


def test_authorizer_rejects_wrong_issuer(jwks: JwksServer) -> None:
    assert_denied(make_token(RSA, iss="https://attacker.example"), "issuer")


def test_authorizer_rejects_wrong_audience(jwks: JwksServer) -> None:
    assert_denied(make_token(RSA, aud="some-other-api"), "audience")


def test_authorizer_rejects_token_without_sub(jwks: JwksServer) -> None:
    assert_denied(make_token(RSA, sub=None), "missing_claim")


def test_authorizer_rejects_tampered_payload(jwks: JwksServer) -> None:
    header, _, signature = make_token(RSA).split(".")
    forged_payload = b64url(claims(sub="admin", roles=["admin"]))

    assert_denied(f"{header}.{forged_payload}.{signature}", "signature")


def test_authorizer_rejects_tampered_signature(jwks: JwksServer) -> None:
    header, payload, signature = make_token(RSA).split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = signature[:middle] + flipped + signature[middle + 1 :]

    assert_denied(f"{header}.{payload}.{tampered}", "signature")


def test_authorizer_rejects_truncated_token(jwks: JwksServer) -> None:
    token = make_token(RSA)
    header, payload, signature = token.split(".")

    assert_denied(f"{header}.{payload}.{signature[:40]}", "signature")
    assert_denied(f"{header}.{payload}", "malformed")
    assert_denied(token[: len(header) // 2], "malformed")


def test_authorizer_rejects_100_kb_token_before_parsing(jwks: JwksServer) -> None:
    token = make_token(RSA, padding="x" * 100_000)
    assert len(token) > 100_000

    assert_denied(token, "too_large")
    assert jwks.requests == 0


def test_authorizer_rejects_header_that_is_not_json(jwks: JwksServer) -> None:
    _, payload, signature = make_token(RSA).split(".")

    assert_denied(f"{b64url('{alg: RS256, not json')}.{payload}.{signature}", "malformed")


def test_authorizer_rejects_header_that_is_json_but_not_an_object(jwks: JwksServer) -> None:
    _, payload, signature = make_token(RSA).split(".")

    assert_denied(f"{b64url('["RS256"]')}.{payload}.{signature}", "malformed")


def test_authorizer_rejects_empty_value(jwks: JwksServer) -> None:
    assert_denied("", "missing_token", header="")


def test_authorizer_rejects_basic_scheme(jwks: JwksServer) -> None:
    credentials = b64url("admin:hunter2-is-the-password")

    assert_denied(
        credentials,
        "scheme",
        header=f"Basic {credentials}",
        websocket_reason="malformed",
    )

"""Settings: validation, the environment, Secrets Manager and SSM with boto3 (moto), the extension.

The Parameters and Secrets extension is played by a small HTTP server on a free loopback port,
which checks the token header and answers the way the extension does (the GetSecretValue or
GetParameter JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from devstack.services import free_port
from gateway.tokens import SettingsError, SettingsSource, parse_settings
from gateway.tokens import settings as settings_module
from gateway.tokens.settings import settings_from_environment
from tests.support.jwt_keys import AUDIENCE, AUTHORIZER_ENV, HS_SECRET, ISSUER
from tests.support.loopback import LoopbackServer

SECRET_JSON = {
    "issuer": ISSUER,
    "audience": AUDIENCE,
    "algorithms": ["HS256"],
    "secret": HS_SECRET,
    "leeway": 10,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*AUTHORIZER_ENV, "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(settings_module, "_boto_clients", {})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeExtension:
    """Answers /secretsmanager/get and /systemsmanager/parameters/get like the extension."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.secrets: dict[str, str] = {}
        self.parameters: dict[str, str] = {}
        self.requests: list[str] = []
        self.status = 200
        self._http = LoopbackServer(self._handler()).start()

    @property
    def port(self) -> int:
        return self._http.port

    def stop(self) -> None:
        self._http.stop()

    def answer(self, path: str, token: str | None) -> tuple[int, Any]:
        self.requests.append(path)
        if token != self.token:
            return 403, {"message": "missing or wrong token"}
        if self.status != 200:
            return self.status, {"message": "failure"}
        url = urlsplit(path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/secretsmanager/get" and query.get("secretId") in self.secrets:
            secret_id = query["secretId"]
            return 200, {"ARN": secret_id, "SecretString": self.secrets[secret_id]}
        if (
            url.path == "/systemsmanager/parameters/get"
            and query.get("withDecryption") == "true"
            and query.get("name") in self.parameters
        ):
            name = query["name"]
            return 200, {"Parameter": {"Name": name, "Value": self.parameters[name]}}
        return 400, {"message": "not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        extension = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.headers.get("X-Aws-Parameters-Secrets-Token")
                status, body = extension.answer(self.path, token)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler


@pytest.fixture
def extension(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeExtension]:
    server = FakeExtension(token="session-token-123")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-123")
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(server.port))
    yield server
    server.stop()


def test_parse_settings_reads_every_key() -> None:
    settings = parse_settings(
        {
            "issuer": ISSUER,
            "audience": ["a", "b"],
            "algorithms": "rs256, ES256",
            "jwksUrl": "https://auth.example/.well-known/jwks.json",
            "leeway": 5,
        }
    )

    assert settings.audiences == ("a", "b")
    assert settings.algorithms == ("RS256", "ES256")
    assert settings.leeway == 5.0
    assert settings.uses_key_set


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"issuer": ISSUER, "audience": AUDIENCE, "secret": HS_SECRET}, ("HS256",)),
        ({"issuer": ISSUER, "audience": AUDIENCE, "jwksUrl": "https://a.example/j"}, ("RS256",)),
    ],
)
def test_parse_settings_default_algorithm_follows_key_material(
    data: dict[str, Any], expected: tuple[str, ...]
) -> None:
    assert parse_settings(data).algorithms == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": ""},
        {"audience": ""},
        {"algorithms": ["none"]},
        {"algorithms": ["HS256"], "secret": "short"},
        {"algorithms": ["HS512"], "secret": "x" * 48},
        {"algorithms": ["RS256"], "jwksUrl": None},
        {"algorithms": ["HS256"], "secret": None},
        {"jwksUrl": "ftp://keys.example/jwks"},
        {"leeway": -1},
        {"leeway": 3600},
        {"leeway": "ten"},
        {"algorithms": None, "jwksUrl": "https://a.example/j"},
    ],
)
def test_parse_settings_rejects_invalid_settings(overrides: dict[str, Any]) -> None:
    data = {**SECRET_JSON, **overrides}

    with pytest.raises(SettingsError):
        parse_settings({key: value for key, value in data.items() if value is not None})


def test_parse_settings_never_shows_secret_in_repr_or_errors() -> None:
    settings = parse_settings(SECRET_JSON)

    assert HS_SECRET not in repr(settings)
    with pytest.raises(SettingsError) as raised:
        parse_settings({**SECRET_JSON, "algorithms": ["HS512"]})
    assert HS_SECRET not in str(raised.value)


def test_settings_from_environment_reads_jwt_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", f"{AUDIENCE},other")
    monkeypatch.setenv("JWT_ALGORITHMS", "RS256,ES256")
    monkeypatch.setenv("JWT_JWKS_URL", "http://127.0.0.1:8001/.well-known/jwks.json")
    monkeypatch.setenv("JWT_LEEWAY_SECONDS", "12")

    settings = settings_from_environment()

    assert settings.audiences == (AUDIENCE, "other")
    assert settings.algorithms == ("RS256", "ES256")
    assert settings.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert settings.leeway == 12.0


def test_source_without_arn_or_parameter_uses_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("JWT_SECRET", HS_SECRET)

    source = SettingsSource()

    assert source.origin == "environment"
    assert source.get().secret == HS_SECRET.encode()


def test_source_reads_secrets_manager_with_boto3() -> None:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="syncroboard/jwt", SecretString=json.dumps(SECRET_JSON)
        )["ARN"]

        settings = SettingsSource(secret_arn=arn).get()

    assert settings.issuer == ISSUER
    assert settings.secret == HS_SECRET.encode()
    assert settings.leeway == 10.0


def test_source_reads_ssm_secure_string_with_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_LEEWAY_SECONDS", "20")
    data = {key: value for key, value in SECRET_JSON.items() if key != "leeway"}
    with mock_aws():
        boto3.client("ssm").put_parameter(
            Name="/syncroboard/jwt", Value=json.dumps(data), Type="SecureString"
        )
        monkeypatch.setenv("JWT_SETTINGS_PARAMETER", "/syncroboard/jwt")

        source = SettingsSource()
        settings = source.get()

    assert source.origin == "ssm"
    assert settings.algorithms == ("HS256",)
    assert settings.leeway == 20.0


def test_source_wraps_boto3_error_for_missing_secret() -> None:
    with mock_aws(), pytest.raises(SettingsError) as raised:
        SettingsSource(secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:gone").get()

    assert raised.value.__cause__ is not None


def test_source_rejects_secret_that_is_not_json_object() -> None:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="bad", SecretString="[1, 2]")["ARN"]

        with pytest.raises(SettingsError):
            SettingsSource(secret_arn=arn).get()


def test_source_reads_secret_through_extension_with_session_token(
    extension: FakeExtension,
) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:syncroboard/jwt-AbCdEf"
    extension.secrets[arn] = json.dumps(SECRET_JSON)

    settings = SettingsSource(secret_arn=arn).get()

    assert settings.secret == HS_SECRET.encode()
    assert len(extension.requests) == 1
    assert extension.requests[0].startswith("/secretsmanager/get?secretId=arn%3Aaws%3A")


def test_source_reads_parameter_through_extension_with_decryption(
    extension: FakeExtension,
) -> None:
    extension.parameters["/syncroboard/jwt"] = json.dumps(SECRET_JSON)

    settings = SettingsSource(parameter="/syncroboard/jwt").get()

    assert settings.issuer == ISSUER
    assert "withDecryption=true" in extension.requests[0]


def test_source_reports_extension_refusal_as_settings_error(
    extension: FakeExtension, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-different-token")

    with pytest.raises(SettingsError):
        SettingsSource(secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:x").get()

    assert len(extension.requests) == 1


def test_source_falls_back_to_boto3_when_no_extension_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(free_port()))
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="syncroboard/jwt", SecretString=json.dumps(SECRET_JSON)
        )["ARN"]

        settings = SettingsSource(secret_arn=arn).get()

    assert settings.issuer == ISSUER


def test_source_caches_settings_until_cache_seconds_pass(extension: FakeExtension) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"
    extension.secrets[arn] = json.dumps(SECRET_JSON)
    clock = Clock()
    source = SettingsSource(secret_arn=arn, cache_seconds=300, clock=clock)

    first = source.get()
    clock.now = 299
    assert source.get() is first
    assert len(extension.requests) == 1

    extension.secrets[arn] = json.dumps({**SECRET_JSON, "issuer": "https://rotated.example"})
    clock.now = 300
    assert source.get().issuer == "https://rotated.example"
    assert len(extension.requests) == 2


def test_source_keeps_last_good_settings_when_refresh_fails(extension: FakeExtension) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"
    extension.secrets[arn] = json.dumps(SECRET_JSON)
    clock = Clock()
    source = SettingsSource(secret_arn=arn, cache_seconds=60, clock=clock)
    first = source.get()

    extension.status = 500
    clock.now = 61
    assert source.get() is first

    # The failure is retried after a short pause, not on every request.
    clock.now = 62
    assert source.get() is first
    assert len(extension.requests) == 2


def test_source_without_good_settings_waits_before_asking_again(extension: FakeExtension) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"
    extension.secrets[arn] = json.dumps(SECRET_JSON)
    extension.status = 500
    clock = Clock()
    source = SettingsSource(secret_arn=arn, clock=clock)

    for now in (0, 1, 9):
        clock.now = now
        with pytest.raises(SettingsError):
            source.get()
    assert len(extension.requests) == 1

    extension.status = 200
    clock.now = 10
    assert source.get().issuer == ISSUER
    assert len(extension.requests) == 2


def test_source_rejects_unreadable_cache_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SETTINGS_CACHE_SECONDS", "soon")

    with pytest.raises(SettingsError):
        SettingsSource()

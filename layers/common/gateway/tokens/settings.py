"""JWT settings: what a token must satisfy, read at run time and cached in the warm function.

Where the settings come from, first match wins:

1. ``JWT_SETTINGS_SECRET_ARN``: a Secrets Manager secret whose string is a JSON object;
2. ``JWT_SETTINGS_PARAMETER``: an SSM SecureString parameter holding the same JSON object;
3. the environment, for local runs: ``JWT_ISSUER``, ``JWT_AUDIENCE`` (comma list),
   ``JWT_ALGORITHMS`` (comma list), ``JWT_JWKS_URL``, ``JWT_SECRET``.

The JSON object's keys: ``issuer``, ``audience`` (string or list), ``algorithms`` (list or comma
string), ``jwksUrl``, ``secret``, ``leeway`` (seconds). ``JWT_LEEWAY_SECONDS`` gives the leeway
when the object has none. ``JWT_SETTINGS_CACHE_SECONDS`` (default 300) is how long a secret or
parameter read stays fresh; a failed refresh keeps the last good settings.

A secret or parameter is read through the AWS Parameters and Secrets Lambda Extension when it
answers (HTTP on ``localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``, default 2773, with
``AWS_SESSION_TOKEN`` as the ``X-Aws-Parameters-Secrets-Token`` header); otherwise with boto3,
which is imported on first use only, so that it never lengthens the authorizer's cold start.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from gateway.config import ConfigError, env_float, env_int, env_str

from .errors import SettingsError

__all__ = [
    "HMAC_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "SettingsSource",
    "TokenSettings",
    "parse_settings",
    "settings_from_environment",
]

logger = logging.getLogger(__name__)

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | {
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
}
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
_HMAC_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
DEFAULT_LEEWAY_SECONDS = 30.0
MAX_LEEWAY_SECONDS = 300.0
DEFAULT_CACHE_SECONDS = 300.0
_RETRY_AFTER_FAILURE_SECONDS = 10.0
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
_KNOWN_KEYS = {"issuer", "audience", "algorithms", "jwksUrl", "secret", "leeway"}


@dataclass(frozen=True)
class TokenSettings:
    """What a token must satisfy. ``secret`` never appears in ``repr``."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    jwks_url: str | None = None
    secret: bytes | None = field(default=None, repr=False)
    leeway: float = DEFAULT_LEEWAY_SECONDS

    @property
    def uses_key_set(self) -> bool:
        """True when some configured algorithm takes its key from the JWKS."""
        return any(alg not in HMAC_ALGORITHMS for alg in self.algorithms)


def _string_list(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise SettingsError(f"{name} must be a string or a list of strings")
    return tuple(item for item in items if item)


def _default_algorithms(jwks_url: str | None, secret: bytes | None) -> tuple[str, ...]:
    # Never from the token: from which key material is configured, and only when that is plain.
    if jwks_url and not secret:
        return ("RS256",)
    if secret and not jwks_url:
        return ("HS256",)
    raise SettingsError("algorithms must be set when both or neither of jwksUrl and secret are")


def _check_jwks_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError("jwksUrl must be an http or https URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        logger.warning(
            "jwksUrl uses plain http to %s: keys fetched this way can be swapped in transit",
            parts.hostname,
        )


def _leeway(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingsError("leeway must be a number of seconds")
    if not 0 <= value <= MAX_LEEWAY_SECONDS:
        raise SettingsError(f"leeway must be between 0 and {MAX_LEEWAY_SECONDS:g} seconds")
    return float(value)


def parse_settings(
    data: Mapping[str, Any], *, default_leeway: float | None = None
) -> TokenSettings:
    """Validate a settings object (the secret's JSON) and return :class:`TokenSettings`.

    Raises :class:`SettingsError` naming the first problem; never echoes the secret.
    """
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        logger.warning("JWT settings: ignoring unknown keys %s", ", ".join(unknown))

    issuer = data.get("issuer")
    if not isinstance(issuer, str) or not issuer.strip():
        raise SettingsError("issuer must be a non-empty string")
    audiences = _string_list(data.get("audience", ""), "audience")
    if not audiences:
        raise SettingsError("audience must name at least one audience")

    jwks_url = data.get("jwksUrl") or None
    if jwks_url is not None:
        if not isinstance(jwks_url, str):
            raise SettingsError("jwksUrl must be a string")
        _check_jwks_url(jwks_url)
    raw_secret = data.get("secret") or None
    if raw_secret is not None and not isinstance(raw_secret, str):
        raise SettingsError("secret must be a string")
    secret = raw_secret.encode("utf-8") if raw_secret else None

    raw_algorithms = data.get("algorithms")
    if raw_algorithms in (None, "", []):
        algorithms = _default_algorithms(jwks_url, secret)
    else:
        algorithms = tuple(alg.upper() for alg in _string_list(raw_algorithms, "algorithms"))
    _check_algorithms(algorithms, jwks_url, secret)

    leeway_value = data.get("leeway")
    if leeway_value is None:
        leeway_value = DEFAULT_LEEWAY_SECONDS if default_leeway is None else default_leeway
    return TokenSettings(
        issuer=issuer.strip(),
        audiences=audiences,
        algorithms=algorithms,
        jwks_url=jwks_url,
        secret=secret,
        leeway=_leeway(leeway_value),
    )


def _check_algorithms(
    algorithms: tuple[str, ...], jwks_url: str | None, secret: bytes | None
) -> None:
    if not algorithms:
        raise SettingsError("algorithms must name at least one algorithm")
    unsupported = [alg for alg in algorithms if alg not in SUPPORTED_ALGORITHMS]
    if unsupported:
        raise SettingsError(f"unsupported algorithms: {', '.join(unsupported)}")
    hmac_algorithms = [alg for alg in algorithms if alg in HMAC_ALGORITHMS]
    if hmac_algorithms:
        if secret is None:
            raise SettingsError(f"{hmac_algorithms[0]} needs a secret")
        needed = max(_HMAC_MIN_KEY_BYTES[alg] for alg in hmac_algorithms)
        if len(secret) < needed:
            raise SettingsError(f"the secret must be at least {needed} bytes for {hmac_algorithms}")
    if len(hmac_algorithms) < len(algorithms) and not jwks_url:
        raise SettingsError("RS, PS and ES algorithms need jwksUrl")


def settings_from_environment(environ: Mapping[str, str] | None = None) -> TokenSettings:
    """Build settings from ``JWT_*`` variables (local runs)."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {
        "issuer": env.get("JWT_ISSUER", ""),
        "audience": env.get("JWT_AUDIENCE", ""),
        "algorithms": env.get("JWT_ALGORITHMS", ""),
        "jwksUrl": env.get("JWT_JWKS_URL", ""),
        "secret": env.get("JWT_SECRET", ""),
    }
    return parse_settings(data, default_leeway=_env_leeway(env))


def _env_leeway(env: Mapping[str, str]) -> float | None:
    raw = env.get("JWT_LEEWAY_SECONDS", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError("JWT_LEEWAY_SECONDS must be a number") from exc


class _ExtensionUnavailableError(Exception):
    """Nothing listens where the Parameters and Secrets extension would."""


def _extension_get(port: int, path: str, token: str, timeout: float) -> Any:
    """GET ``path`` from the extension on loopback and return its JSON body."""
    import http.client

    connection = http.client.HTTPConnection("localhost", port, timeout=timeout)
    try:
        try:
            connection.connect()
        except OSError as exc:
            raise _ExtensionUnavailableError(str(exc)) from exc
        connection.request("GET", path, headers={"X-Aws-Parameters-Secrets-Token": token})
        response = connection.getresponse()
        body = response.read(1_000_000)
        if response.status != 200:
            raise SettingsError(f"the secrets extension answered HTTP {response.status}")
        return json.loads(body)
    except (OSError, http.client.HTTPException) as exc:
        raise SettingsError(f"the secrets extension failed: {exc.__class__.__name__}") from exc
    except ValueError as exc:
        raise SettingsError("the secrets extension answered something that is not JSON") from exc
    finally:
        connection.close()


_boto_clients: dict[str, Any] = {}


def _boto_client(service: str) -> Any:
    """One boto3 client per service per warm function; boto3 is imported here, not at start."""
    client = _boto_clients.get(service)
    if client is None:
        import boto3
        from botocore.config import Config

        # Short enough that two attempts fit in the authorizer's 5 s timeout.
        config = Config(connect_timeout=1, read_timeout=1.5, retries={"total_max_attempts": 2})
        client = boto3.client(service, config=config)  # type: ignore[call-overload]
        _boto_clients[service] = client
    return client


def _boto_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


class SettingsSource:
    """Reads :class:`TokenSettings` from where the environment says and caches them.

    Environment variables read: ``JWT_SETTINGS_SECRET_ARN``, ``JWT_SETTINGS_PARAMETER``,
    ``JWT_SETTINGS_CACHE_SECONDS``, ``JWT_LEEWAY_SECONDS``, ``JWT_ISSUER``, ``JWT_AUDIENCE``,
    ``JWT_ALGORITHMS``, ``JWT_JWKS_URL``, ``JWT_SECRET``, ``AWS_SESSION_TOKEN``,
    ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``. Arguments override them.
    """

    def __init__(
        self,
        *,
        secret_arn: str | None = None,
        parameter: str | None = None,
        cache_seconds: float | None = None,
        extension_port: int | None = None,
        extension_timeout: float = 2.0,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        try:
            self.secret_arn = env_str("JWT_SETTINGS_SECRET_ARN", None, secret_arn) or None
            self.parameter = env_str("JWT_SETTINGS_PARAMETER", None, parameter) or None
            self.cache_seconds = env_float(
                "JWT_SETTINGS_CACHE_SECONDS", DEFAULT_CACHE_SECONDS, cache_seconds
            )
            self._extension_port = env_int(
                "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", 2773, extension_port
            )
        except ConfigError as exc:
            raise SettingsError(str(exc)) from exc
        self._extension_timeout = extension_timeout
        self._extension_absent = False
        self._clock = clock
        self._lock = threading.Lock()
        self._settings: TokenSettings | None = None
        self._fresh_until = 0.0
        self._failure: SettingsError | None = None

    @property
    def origin(self) -> str:
        """Where the settings come from: ``secretsmanager``, ``ssm`` or ``environment``."""
        if self.secret_arn:
            return "secretsmanager"
        if self.parameter:
            return "ssm"
        return "environment"

    def get(self) -> TokenSettings:
        """The current settings: cached, refreshed after ``cache_seconds``.

        Raises :class:`SettingsError` only when no good settings were ever read; after such a
        failure, the next read is attempted 10 s later, and requests in between fail at once.
        """
        settings = self._settings
        if settings is not None and self._clock() < self._fresh_until:
            return settings
        with self._lock:
            if self._settings is not None and self._clock() < self._fresh_until:
                return self._settings
            if self._failure is not None and self._clock() < self._fresh_until:
                # Every request of an outage must not wait on Secrets Manager in turn.
                raise SettingsError(f"{self._failure} (retrying shortly)") from self._failure
            return self._refresh()

    def _refresh(self) -> TokenSettings:
        try:
            settings = self._load()
        except SettingsError as exc:
            if self._settings is None:
                self._failure = exc
                self._fresh_until = self._clock() + _RETRY_AFTER_FAILURE_SECONDS
                raise
            logger.warning(
                "JWT settings refresh from %s failed; keeping the last good settings",
                self.origin,
                exc_info=True,
            )
            self._fresh_until = self._clock() + min(
                self.cache_seconds, _RETRY_AFTER_FAILURE_SECONDS
            )
            return self._settings
        self._settings = settings
        self._failure = None
        # The environment does not change under a running function: read it once.
        ttl = math.inf if self.origin == "environment" else self.cache_seconds
        self._fresh_until = self._clock() + ttl
        return settings

    def _load(self) -> TokenSettings:
        if self.origin == "environment":
            return settings_from_environment(self._environ)
        document = self._read_document()
        try:
            data = json.loads(document)
        except ValueError as exc:
            raise SettingsError(f"the {self.origin} value is not JSON") from exc
        if not isinstance(data, dict):
            raise SettingsError(f"the {self.origin} value is not a JSON object")
        return parse_settings(data, default_leeway=_env_leeway(self._environ))

    def _read_document(self) -> str:
        token = self._environ.get("AWS_SESSION_TOKEN")
        if token and not self._extension_absent:
            try:
                return self._read_through_extension(token)
            except _ExtensionUnavailableError:
                logger.debug("no Parameters and Secrets extension; reading with boto3")
                self._extension_absent = True
        return self._read_with_boto3()

    def _read_through_extension(self, token: str) -> str:
        if self.secret_arn:
            path = f"/secretsmanager/get?secretId={quote(self.secret_arn, safe='')}"
            answer = _extension_get(self._extension_port, path, token, self._extension_timeout)
            return _secret_string(answer)
        name = quote(str(self.parameter), safe="")
        path = f"/systemsmanager/parameters/get?name={name}&withDecryption=true"
        answer = _extension_get(self._extension_port, path, token, self._extension_timeout)
        return _parameter_value(answer)

    def _read_with_boto3(self) -> str:
        errors = _boto_errors()
        try:
            if self.secret_arn:
                answer = _boto_client("secretsmanager").get_secret_value(SecretId=self.secret_arn)
                return _secret_string(answer)
            answer = _boto_client("ssm").get_parameter(Name=self.parameter, WithDecryption=True)
            return _parameter_value(answer)
        except errors as exc:
            raise SettingsError(f"reading the JWT settings from {self.origin} failed") from exc


def _secret_string(answer: Any) -> str:
    if isinstance(answer, dict):
        text = answer.get("SecretString")
        if isinstance(text, str):
            return text
        binary = answer.get("SecretBinary")
        if isinstance(binary, bytes):
            return binary.decode("utf-8", errors="replace")
    raise SettingsError("the secret has no SecretString")


def _parameter_value(answer: Any) -> str:
    parameter = answer.get("Parameter") if isinstance(answer, dict) else None
    value = parameter.get("Value") if isinstance(parameter, dict) else None
    if not isinstance(value, str):
        raise SettingsError("the parameter has no value")
    return value

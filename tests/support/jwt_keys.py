"""Test keys and tokens: RSA and EC key pairs, signed and hand-forged JWTs, and a real JWKS server.

Anything that needs a token can use these: ``make_token(rsa_key("k1"), sub="u-1")`` signs one
with sensible claims, ``forge(...)`` builds one byte by byte (for ``alg: none``, broken headers,
HMAC signed with a public key), and :class:`JwksServer` serves a key set over HTTP on a free
loopback port, with rotation and with misbehaviours (hanging, dripping, failing) for timeouts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.loopback import LoopbackServer

ISSUER = "https://auth.syncroboard.test"
AUDIENCE = "syncroboard-api"
HS_SECRET = "test-shared-secret-of-at-least-32-bytes!"

_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}


@dataclass(frozen=True)
class SigningKey:
    """A private key, its ``kid`` and the algorithm it signs with."""

    kid: str
    alg: str
    private: Any

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        """The public half as a JWK, with ``kid``, ``alg`` and ``use``; ``extra`` overrides."""
        public = self.private.public_key()
        maker = RSAAlgorithm if self.alg[:2] in {"RS", "PS"} else ECAlgorithm
        jwk: dict[str, Any] = maker.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        jwk.update(extra)
        return {key: value for key, value in jwk.items() if value is not None}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


@cache
def _rsa_private(bits: int, seed: str) -> rsa.RSAPrivateKey:
    # Generating RSA keys is the slow part of these tests: one per (size, name) per session.
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_key(kid: str = "rsa-1", alg: str = "RS256", bits: int = 2048) -> SigningKey:
    """An RSA key (cached per ``kid`` and size, so repeated calls give the same key)."""
    return SigningKey(kid, alg, _rsa_private(bits, kid))


@cache
def _ec_private(alg: str, seed: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVES[alg])


def ec_key(kid: str = "ec-1", alg: str = "ES256") -> SigningKey:
    """An EC key on the curve ``alg`` asks for (cached per ``kid``)."""
    return SigningKey(kid, alg, _ec_private(alg, kid))


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid SyncroBoard claims for now; an override of ``None`` removes that claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "roles": ["member"],
        "projects": ["p-1", "p-2"],
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def make_token(
    key: SigningKey | str | bytes,
    payload: dict[str, Any] | None = None,
    *,
    headers: dict[str, Any] | None = None,
    alg: str | None = None,
    **overrides: Any,
) -> str:
    """Sign ``payload`` (default: :func:`claims` with ``overrides``) with ``key``.

    A string or bytes key signs HS256 (or ``alg``); a :class:`SigningKey` signs with its own
    algorithm and ``kid`` unless ``alg`` or ``headers`` say otherwise.
    """
    body = payload if payload is not None else claims(**overrides)
    if isinstance(key, SigningKey):
        extra = {"kid": key.kid, **(headers or {})}
        return jwt.encode(body, key.private, algorithm=alg or key.alg, headers=extra)
    return jwt.encode(body, key, algorithm=alg or "HS256", headers=headers)


def b64url(data: bytes | str | dict[str, Any]) -> str:
    """base64url without padding, of bytes, text, or a dict as compact JSON."""
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(
    header: dict[str, Any] | bytes | str,
    payload: dict[str, Any] | bytes | str,
    *,
    hmac_key: bytes | None = None,
    signature: bytes = b"",
) -> str:
    """Assemble a token by hand: any header and payload, HMAC-SHA256 with ``hmac_key`` if given.

    This is how the attack corpus signs HS256 with an RSA public key as the secret, which pyjwt
    itself refuses to do.
    """
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


AUTHORIZER_ENV = (
    "JWT_SETTINGS_SECRET_ARN",
    "JWT_SETTINGS_PARAMETER",
    "JWT_SETTINGS_CACHE_SECONDS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_ALGORITHMS",
    "JWT_JWKS_URL",
    "JWT_SECRET",
    "JWT_LEEWAY_SECONDS",
    "JWKS_MIN_REFETCH_SECONDS",
    "JWKS_CACHE_SECONDS",
    "JWKS_FETCH_TIMEOUT_SECONDS",
    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
)


def authorizer_environment(jwks_url: str = "", **values: str) -> dict[str, str]:
    """Every variable the authorizer reads, set for local settings; ``values`` override."""
    environment = dict.fromkeys(AUTHORIZER_ENV, "")
    environment.update(
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        JWT_ALGORITHMS="RS256,ES256" if jwks_url else "HS256",
        JWT_JWKS_URL=jwks_url,
        JWT_SECRET="" if jwks_url else HS_SECRET,
    )
    environment.update(values)
    return environment


@contextmanager
def captured_json_log(logger: Any) -> Iterator[list[dict[str, Any]]]:
    """Collect what a Powertools ``logger`` writes, one dict per JSON line, until the block ends.

    The list fills when the block exits; the logger's own stream is put back.
    """
    handler = logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines() if line)


class JwksServer:
    """A JWKS endpoint on ``127.0.0.1``, port 0: ``url``, ``requests`` served, keys swappable.

    ``mode`` changes how it answers: ``"ok"``; ``"hang"`` (accept, answer nothing);
    ``"drip"`` (a valid answer, one byte every ``drip_interval`` seconds); ``"error"`` (HTTP 500);
    ``"redirect"`` (302 to itself); ``"huge"`` (a document over the client's size limit).
    """

    def __init__(self, keys: Iterable[SigningKey | dict[str, Any]] = (), mode: str = "ok") -> None:
        self.mode = mode
        self.drip_interval = 0.2
        self.requests = 0
        self._document: dict[str, Any] = {"keys": []}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.set_keys(keys)
        self._http = LoopbackServer(self._handler_class()).start()

    @property
    def url(self) -> str:
        return f"{self._http.origin}/.well-known/jwks.json"

    def set_keys(self, keys: Iterable[SigningKey | dict[str, Any]]) -> None:
        """Serve these keys from now on (a :class:`SigningKey` is published as its public JWK)."""
        jwks = [key.public_jwk() if isinstance(key, SigningKey) else key for key in keys]
        with self._lock:
            self._document = {"keys": jwks}

    def set_document(self, document: Any) -> None:
        """Serve any JSON value, key set or not."""
        with self._lock:
            self._document = document

    def stop(self) -> None:
        self._stopping.set()
        self._http.stop()

    def __enter__(self) -> JwksServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests += 1
            body = json.dumps(self._document).encode("utf-8")
        if self.mode == "error":
            return 500, {}, b"upstream broke"
        if self.mode == "redirect":
            return 302, {"Location": self.url}, b""
        if self.mode == "huge":
            body = json.dumps({"keys": [], "padding": "x" * 300_000}).encode("utf-8")
        return 200, {"Content-Type": "application/json"}, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if server.mode == "hang":
                    server._stopping.wait(30)
                    return
                status, headers, body = server._answer()
                if server.mode == "drip":
                    # The client hangs up at its deadline; that is the point of this mode.
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self._drip(status, body)
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drip(self, status: int, body: bytes) -> None:
                head = f"HTTP/1.1 {status} OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                for index in range(len(head)):
                    if server._stopping.wait(server.drip_interval):
                        return
                    self.wfile.write(head[index : index + 1])
                    self.wfile.flush()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test output is not the place for access logs."""

        return Handler

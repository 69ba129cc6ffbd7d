"""The Auth service's public keys: fetched from its JWKS URL, cached in the warm function.

Refetch rules, so that a flood of tokens with made-up ``kid`` values costs one fetch, not one per
request:

- the first lookup fetches;
- a lookup after ``JWKS_CACHE_SECONDS`` (default 300) refetches, which is how a key the Auth
  service removed stops verifying;
- a ``kid`` not in the cache refetches, which is how a rotated-in key is picked up;
- but never more than one fetch attempt, successful or not, per ``JWKS_MIN_REFETCH_SECONDS``
  (default 30), except the very first.

A failed refetch keeps the keys already cached (logged at WARNING); with no keys at all, the
lookup raises :class:`JwksFetchError`. One fetch takes at most ``JWKS_FETCH_TIMEOUT_SECONDS``
(default 1.5, and never more), connection and slow answers included.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError, PyJWKError

from gateway.config import ConfigError, env_float

from .errors import AlgorithmNotAllowedError, JwksFetchError, KeyNotFoundError, SettingsError

__all__ = [
    "MAX_FETCH_TIMEOUT_SECONDS",
    "JwksCache",
    "PublicKey",
    "fetch_key_set",
    "parse_key_set",
]

logger = logging.getLogger(__name__)

MAX_FETCH_TIMEOUT_SECONDS = 1.5
DEFAULT_MIN_REFETCH_SECONDS = 30.0
DEFAULT_CACHE_SECONDS = 300.0
MAX_DOCUMENT_BYTES = 256 * 1024
_MIN_RSA_BITS = 2048
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One verification key of the set, already loaded by ``cryptography``."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None
    key: Any

    def accepts(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be checked with this key."""
        if self.alg is not None and self.alg != alg:
            return False
        if self.kty == "RSA":
            return alg[:2] in {"RS", "PS"}
        if self.kty == "EC":
            return _EC_CURVES.get(alg) == self.crv
        return False


def _load_key(jwk: Mapping[str, Any]) -> PublicKey:
    """One JWK to a :class:`PublicKey`; ``ValueError`` says why the key is unusable."""
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("no kid")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f"use is {jwk.get('use')!r}, not sig")
    if "d" in jwk:
        raise ValueError("it carries private key material")
    alg = jwk.get("alg")
    if alg is not None and not isinstance(alg, str):
        raise ValueError("alg is not a string")

    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            rsa_key = RSAAlgorithm.from_jwk(dict(jwk))
            if rsa_key.key_size < _MIN_RSA_BITS:
                raise ValueError(f"RSA key of {rsa_key.key_size} bits, below {_MIN_RSA_BITS}")
            return PublicKey(kid, "RSA", None, alg, rsa_key)
        if kty == "EC":
            ec_key = ECAlgorithm.from_jwk(dict(jwk))
            return PublicKey(kid, "EC", str(jwk.get("crv")), alg, ec_key)
    except (InvalidKeyError, PyJWKError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable {kty} key: {exc}") from exc
    # "oct" keys are refused on purpose: a shared secret published in a key set would let anyone
    # sign, and accepting one is the classic HS/RS confusion.
    raise ValueError(f"kty {kty!r} is not RSA or EC")


def parse_key_set(document: Any) -> dict[str, PublicKey]:
    """The usable keys of a JWKS document, by ``kid``; each unusable key is skipped with a log line.

    Raises :class:`JwksFetchError` when the document is not a key set at all.
    """
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise JwksFetchError("the JWKS document has no keys list")
    found: dict[str, PublicKey] = {}
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, dict):
            logger.warning("JWKS key #%d skipped: not an object", index)
            continue
        try:
            key = _load_key(jwk)
        except ValueError as exc:
            logger.warning("JWKS key #%d skipped: %s", index, exc)
            continue
        if key.kid in found:
            logger.warning("JWKS key #%d skipped: kid %r appears twice", index, key.kid[:64])
            continue
        found[key.kid] = key
    return found


def fetch_key_set(url: str, timeout: float) -> Any:
    """GET the JWKS document at ``url`` and return its parsed JSON, all within ``timeout`` seconds.

    A socket timeout alone bounds each read, not the whole answer: a server that sends one byte
    at a time could hold the authorizer until Lambda's own timeout. A watchdog timer therefore
    shuts the socket down at the deadline, whatever phase the request is in.
    """
    import http.client

    parts = urlsplit(url)
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, parts.port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)

    expired = threading.Event()

    def abort() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        if expired.is_set():
            raise TimeoutError("deadline passed while connecting")
        connection.request("GET", target, headers={"Accept": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise JwksFetchError(f"the JWKS URL answered HTTP {response.status}")
        body = response.read(MAX_DOCUMENT_BYTES + 1)
        if expired.is_set():
            raise TimeoutError("deadline passed while reading")
    except (OSError, http.client.HTTPException) as exc:
        cause = f"timed out after {timeout:g} s" if expired.is_set() else exc.__class__.__name__
        raise JwksFetchError(f"fetching the JWKS failed: {cause}") from exc
    finally:
        watchdog.cancel()
        connection.close()

    if len(body) > MAX_DOCUMENT_BYTES:
        raise JwksFetchError(f"the JWKS document is over {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise JwksFetchError("the JWKS document is not JSON") from exc


class JwksCache:
    """The key set at one URL, cached and refetched by the rules in the module docstring.

    Environment variables read: ``JWKS_MIN_REFETCH_SECONDS``, ``JWKS_CACHE_SECONDS``,
    ``JWKS_FETCH_TIMEOUT_SECONDS``. Arguments override them.
    """

    def __init__(
        self,
        url: str,
        *,
        min_refetch_seconds: float | None = None,
        cache_seconds: float | None = None,
        fetch_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str, float], Any] = fetch_key_set,
    ) -> None:
        try:
            self.min_refetch_seconds = env_float(
                "JWKS_MIN_REFETCH_SECONDS", DEFAULT_MIN_REFETCH_SECONDS, min_refetch_seconds
            )
            self.cache_seconds = env_float(
                "JWKS_CACHE_SECONDS", DEFAULT_CACHE_SECONDS, cache_seconds
            )
            timeout = env_float(
                "JWKS_FETCH_TIMEOUT_SECONDS", MAX_FETCH_TIMEOUT_SECONDS, fetch_timeout
            )
        except ConfigError as exc:
            raise SettingsError(str(exc)) from exc
        if timeout > MAX_FETCH_TIMEOUT_SECONDS or timeout <= 0:
            logger.warning(
                "JWKS fetch timeout %gs is outside (0, %g]; using %g s",
                timeout,
                MAX_FETCH_TIMEOUT_SECONDS,
                MAX_FETCH_TIMEOUT_SECONDS,
            )
            timeout = MAX_FETCH_TIMEOUT_SECONDS
        self.url = url
        self.fetch_timeout = timeout
        self.fetch_count = 0
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None

    def kids(self) -> list[str]:
        """The ``kid`` values cached now, without fetching."""
        return list(self._keys)

    def key_for(self, kid: str, alg: str) -> Any:
        """The key object for ``kid``, fit for ``alg``; may fetch, by the module's rules.

        Raises :class:`KeyNotFoundError`, :class:`AlgorithmNotAllowedError` (the key is not of
        the token's algorithm) or :class:`JwksFetchError` (nothing cached and no fetch worked).
        """
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self.cache_seconds:
            self._refresh(now, why="cache expired" if self._fetched_at is not None else "first use")
        key = self._keys.get(kid)
        if key is None and self._refresh(now, why="unknown kid"):
            key = self._keys.get(kid)
        if key is None and self._fetched_at is None:
            raise JwksFetchError("no key set fetched yet; retrying after the refetch interval")
        if key is None:
            raise KeyNotFoundError(f"no key with kid {kid[:64]!r} in the key set")
        if not key.accepts(alg):
            raise AlgorithmNotAllowedError(f"key {kid[:64]!r} is not a key for {alg}")
        return key.key

    def _refresh(self, now: float, why: str) -> bool:
        """Fetch if the rate limit allows; True when a fetch succeeded just now."""
        with self._lock:
            attempted = self._attempted_at
            if attempted is not None and now - attempted < self.min_refetch_seconds:
                return False
            self._attempted_at = now
            self.fetch_count += 1
            try:
                keys = parse_key_set(self._fetch(self.url, self.fetch_timeout))
            except JwksFetchError as exc:
                if not self._keys:
                    raise
                logger.warning("JWKS refetch (%s) failed, keeping cached keys: %s", why, exc)
                return False
            if not keys:
                logger.warning("JWKS at %s holds no usable key", self.url)
            logger.debug("JWKS fetched (%s): %d keys", why, len(keys))
            self._keys = keys
            self._fetched_at = now
            return True

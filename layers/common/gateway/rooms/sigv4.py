"""AWS Signature Version 4 for the Management API's one request, ``POST @connections/{id}``.

botocore signs each request through layers of hooks and copies; a broadcast signs the same kind
of request a thousand times, differing only in the connection id and perhaps the second. This
signer does only what SigV4 requires (AWS General Reference, "Create a signed AWS API request"):

- the canonical request: method, the URI path encoded once more (every service but S3 signs the
  path twice-encoded), an empty query, the signed headers ``host``, ``x-amz-date`` and, with
  temporary credentials, ``x-amz-security-token``, and the payload's SHA-256 (computed once per
  message by the caller, since every recipient gets the same bytes);
- the string to sign over the scope ``{date}/{region}/{service}/aws4_request``;
- the signing key, four HMACs deep, derived once per day and secret key and kept.

Credentials are read as Lambda provides them, from ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``; when those are absent, from botocore's
credential chain (shared files, container or instance roles), imported only then.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = ["ALGORITHM", "CredentialSource", "Credentials", "Signer", "payload_hash"]

logger = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    """An access key pair, and the session token that goes with temporary credentials."""

    access_key: str
    secret_key: str
    token: str | None = None


class CredentialSource:
    """The credentials to sign with, looked up on every signature so that a rotation is seen.

    The environment is read first (three dictionary lookups). Only when it holds no key pair is
    botocore's chain consulted, once, and its credentials object asked each time after (it
    refreshes temporary credentials itself before they expire).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._cached: Credentials | None = None
        self._chain: Any = None
        self._chain_resolved = False
        self._lock = threading.Lock()

    def get(self) -> Credentials | None:
        """The current credentials, or None when none can be found (requests then go unsigned)."""
        env = self._environ
        access_key = env.get("AWS_ACCESS_KEY_ID")
        secret_key = env.get("AWS_SECRET_ACCESS_KEY")
        if access_key and secret_key:
            token = env.get("AWS_SESSION_TOKEN") or None
            cached = self._cached
            if (
                cached is None
                or cached.access_key != access_key
                or cached.secret_key != secret_key
                or cached.token != token
            ):
                cached = self._cached = Credentials(access_key, secret_key, token)
            return cached
        return self._from_chain()

    def _from_chain(self) -> Credentials | None:
        with self._lock:
            if not self._chain_resolved:
                import botocore.session

                self._chain = botocore.session.get_session().get_credentials()
                self._chain_resolved = True
        if self._chain is None:
            return None
        frozen = self._chain.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def payload_hash(body: bytes) -> str:
    """The hex SHA-256 of a request body, as the canonical request's last line carries it."""
    return hashlib.sha256(body).hexdigest()


class Signer:
    """Signs requests for one region and service with the credentials of a source.

    ``headers`` returns the headers to add to the request; ``now`` (epoch seconds) is for tests.
    """

    def __init__(
        self, credentials: CredentialSource, *, region: str, service: str = "execute-api"
    ) -> None:
        self.region = region
        self.service = service
        self._credentials = credentials
        self._key: tuple[str, str, bytes] | None = None

    def headers(
        self,
        method: str,
        host: str,
        path: str,
        body_hash: str,
        *,
        now: float | None = None,
    ) -> list[tuple[str, str]]:
        """``X-Amz-Date``, the security token when there is one, and ``Authorization``.

        ``path`` is the request target exactly as sent (already percent-encoded, no query);
        ``host`` the Host header exactly as sent. Returns no headers without credentials.
        """
        credentials = self._credentials.get()
        if credentials is None:
            return []
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        datestamp = amz_date[:8]
        scope = f"{datestamp}/{self.region}/{self.service}/aws4_request"

        token = credentials.token
        if token:
            canonical_headers = (
                f"host:{host}\nx-amz-date:{amz_date}\nx-amz-security-token:{token}\n"
            )
            signed_headers = "host;x-amz-date;x-amz-security-token"
        else:
            canonical_headers = f"host:{host}\nx-amz-date:{amz_date}\n"
            signed_headers = "host;x-amz-date"
        canonical_request = (
            f"{method}\n{quote(path, safe='/~')}\n\n{canonical_headers}\n"
            f"{signed_headers}\n{body_hash}"
        )
        string_to_sign = (
            f"{ALGORITHM}\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        signature = hmac.new(
            self._signing_key(credentials.secret_key, datestamp),
            string_to_sign.encode(),
            hashlib.sha256,
        ).hexdigest()

        headers = [("X-Amz-Date", amz_date)]
        if token:
            headers.append(("X-Amz-Security-Token", token))
        headers.append(
            (
                "Authorization",
                f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={signature}",
            )
        )
        return headers

    def _signing_key(self, secret_key: str, datestamp: str) -> bytes:
        # Four HMACs per derivation; a broadcast's thousand signatures share one. The tuple is
        # swapped whole, so concurrent senders never see a key of one day under another's date.
        cached = self._key
        if cached is not None and cached[0] == secret_key and cached[1] == datestamp:
            return cached[2]
        key = _hmac(f"AWS4{secret_key}".encode(), datestamp)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        self._key = (secret_key, datestamp, key)
        return key


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()

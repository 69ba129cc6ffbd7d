"""A lean API Gateway Management API client: ``POST {endpoint}/@connections/{id}``, SigV4-signed,
over pooled keep-alive connections.

A boto3 ``post_to_connection`` costs about 0.9 ms of CPU, nearly all of it botocore building,
validating, signing and parsing through its hooks; a broadcast to 1,000 connections spends a
second there. This client sends the same request, signed by :mod:`gateway.rooms.sigv4`, as one
write on a pooled keep-alive connection (:mod:`gateway.rooms.wire`). The endpoint is checked,
and the pool and its deadline sockets (TLS verified against the system's CA store) are made, by
the layer's :class:`~gateway.upstream.client.UpstreamClient`; every post is bounded by one total
deadline.

Answers are read as botocore reads a REST-JSON error: the type from the ``x-amzn-ErrorType``
header, else the body's ``__type`` or ``code`` (a ``prefix#`` and a ``:suffix`` dropped), else
the status; the message from the body's ``message`` or ``Message``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from urllib.parse import quote

from gateway.rooms.errors import RoomsError
from gateway.rooms.sigv4 import CredentialSource, Signer, payload_hash
from gateway.rooms.wire import Answer, exchange
from gateway.upstream.client import ConnectionPool, UpstreamClient

__all__ = ["DEFAULT_TIMEOUT", "ManagementApi", "ManagementApiError", "region_of"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


class ManagementApiError(RoomsError):
    """The Management API answered a post with an error status.

    ``code`` is the error type as boto3 would name it (``GoneException``,
    ``LimitExceededException``, ...), or the status as a string when the answer names none.
    """

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message


def region_of(endpoint_url: str, environ: Mapping[str, str] | None = None) -> str:
    """The region to sign for: an ``execute-api`` host's, else ``AWS_REGION``,
    ``AWS_DEFAULT_REGION``, else ``us-east-1``."""
    env = os.environ if environ is None else environ
    match = _REGION_IN_HOST.search(endpoint_url)
    if match:
        return match.group(1)
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


class ManagementApi:
    """Posts messages to connections of one WebSocket API stage; safe to share between threads.

    ``endpoint_url`` is ``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`` on AWS, a
    moto server or the local emulator's ``@connections`` address elsewhere. ``pool_size`` idle
    connections are kept (size it to the senders in flight); each post is bounded by ``timeout``
    seconds in all. Without credentials (the local emulator) requests go unsigned.
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        pool_size: int,
        region: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: CredentialSource | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self.pool = ConnectionPool(max_idle_per_origin=pool_size)
        self.http = UpstreamClient(endpoint_url.rstrip("/"), timeout=timeout, pool=self.pool)
        self.signer = Signer(
            credentials or CredentialSource(), region=region or region_of(endpoint_url)
        )
        self._prefix = f"{self.http.base_path}/@connections/"
        self._host_line = f"Host: {self.http.host_header}\r\n"
        self._body_hash: tuple[bytes, str] = (b"", payload_hash(b""))
        self._warned_unsigned = False

    @property
    def region(self) -> str:
        return self.signer.region

    def post(self, connection_id: str, data: bytes) -> None:
        """Send ``data`` to one connection.

        Raises :class:`ManagementApiError` when API Gateway answers with an error, and an
        :class:`~gateway.upstream.errors.UpstreamError` when it does not answer at all.
        """
        # Every recipient of a broadcast gets the same bytes object: hash it once.
        cached = self._body_hash
        if cached[0] is data:
            body_hash = cached[1]
        else:
            body_hash = payload_hash(data)
            self._body_hash = (data, body_hash)

        target = self._prefix + quote(connection_id, safe="")
        headers = self.signer.headers("POST", self.http.host_header, target, body_hash)
        if not headers and not self._warned_unsigned:
            self._warned_unsigned = True
            logger.warning(
                "no AWS credentials found: Management API requests to %s go unsigned",
                self.endpoint_url,
            )
        head = "".join(
            [
                f"POST {target} HTTP/1.1\r\n",
                self._host_line,
                *[f"{name}: {value}\r\n" for name, value in headers],
                f"Content-Length: {len(data)}\r\n\r\n",
            ]
        )
        answer = exchange(self.pool, self.http.origin, head.encode("latin-1") + data, self.timeout)
        if not 200 <= answer.status < 300:
            raise _error_of(answer)

    def close(self) -> None:
        """Close the idle connections."""
        self.pool.close()


def _error_of(response: Answer) -> ManagementApiError:
    body: object = None
    if response.body:
        try:
            body = json.loads(response.body)
        except ValueError:
            body = None
    fields = body if isinstance(body, dict) else {}

    code = response.header("x-amzn-errortype") or fields.get("__type") or fields.get("code")
    code = str(code).split(":", 1)[0].rsplit("#", 1)[-1] if code else str(response.status)
    message = fields.get("message") or fields.get("Message") or ""
    return ManagementApiError(response.status, code, str(message))

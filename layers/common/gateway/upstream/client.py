"""A pooled HTTP/1.1 client whose every request is bounded by one deadline.

Why not a read timeout: a socket timeout bounds each ``recv`` alone, so an upstream that drips a
byte every second never trips a 5 s read timeout. Here each connection's socket carries the
request's deadline and re-arms its timeout to the time left before every send and receive, so
connecting, sending, reading the headers and reading the body together never outlast
``timeout`` (DNS resolution excepted: ``getaddrinfo`` cannot be bounded).

One :class:`ConnectionPool` per warm function (:func:`default_pool`) keeps idle keep-alive
connections per upstream, so consecutive invocations reuse them. A pooled connection the upstream
has closed meanwhile is noticed before use (it polls readable) and replaced; an idempotent request
that meets a reset on a reused connection before any answer is sent once more on a fresh one.
"""

from __future__ import annotations

import http.client
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.config import ConfigError
from gateway.upstream.errors import (
    RequestRejected,
    ResponseTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ConnectionPool",
    "PendingResponse",
    "UpstreamClient",
    "UpstreamResponse",
    "default_pool",
]

logger = logging.getLogger(__name__)

# Lambda answers a synchronous invocation with at most 6 MB, and a binary body grows by a third
# once base64-encoded; 4 MiB leaves room for both and for the headers.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_CHUNK = 64 * 1024


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's deadline has passed")
    return left


class _DeadlineSocket(socket.socket):
    """A TCP socket that re-arms its timeout to the time left before each send and receive."""

    __slots__ = ("deadline",)
    deadline: float

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(_remaining(self.deadline))
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.settimeout(_remaining(self.deadline))
        return super().recv(bufsize, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(_remaining(self.deadline))
        super().sendall(data, flags)


class _DeadlineSSLSocket(ssl.SSLSocket):
    """The TLS counterpart of :class:`_DeadlineSocket` (``SSLContext.sslsocket_class``)."""

    deadline: float = 0.0

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        self.settimeout(_remaining(self.deadline))
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self.settimeout(_remaining(self.deadline))
        return super().recv(buflen, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(_remaining(self.deadline))
        super().sendall(data, flags)


def _open_socket(host: str, port: int, deadline: float) -> _DeadlineSocket:
    last: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = _DeadlineSocket(family, kind, proto)
        sock.deadline = deadline
        try:
            sock.settimeout(_remaining(deadline))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            last = exc
            continue
        return sock
    raise last or OSError(f"no address for {host}:{port}")


class _Connection(http.client.HTTPConnection):
    """One keep-alive connection to an upstream, opened within the current request's deadline."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self.tls = tls
        self.deadline = 0.0

    def connect(self) -> None:
        sock: socket.socket = _open_socket(self.host, self.port, self.deadline)
        if self.tls is not None:
            sock.settimeout(_remaining(self.deadline))
            wrapped = self.tls.wrap_socket(sock, server_hostname=self.host)
            assert isinstance(wrapped, _DeadlineSSLSocket)
            wrapped.deadline = self.deadline
            sock = wrapped
        self.sock = sock

    def arm(self, deadline: float) -> None:
        """Bound everything this connection does next by ``deadline`` (``time.monotonic``)."""
        self.deadline = deadline
        if isinstance(self.sock, _DeadlineSocket | _DeadlineSSLSocket):
            self.sock.deadline = deadline

    def dropped(self) -> bool:
        """True when the upstream closed this idle connection (or sent something unasked)."""
        if self.sock is None:
            return False
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))


Origin = tuple[str, str, int]


class ConnectionPool:
    """Idle keep-alive connections per upstream origin, shared by the threads of one process."""

    def __init__(self, max_idle_per_origin: int = 16, *, tls: ssl.SSLContext | None = None) -> None:
        """``tls`` verifies HTTPS upstreams; the default trusts the system's CA store."""
        self.max_idle_per_origin = max_idle_per_origin
        self._idle: dict[Origin, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._tls = tls or ssl.create_default_context()
        # Every TLS socket of this pool re-arms its timeout to the request's deadline.
        self._tls.sslsocket_class = _DeadlineSSLSocket

    def checkout(self, origin: Origin, *, fresh: bool = False) -> tuple[_Connection, bool]:
        """An idle live connection to ``origin`` (reused=True) or a new unopened one."""
        while not fresh:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None:
                break
            if not connection.dropped():
                return connection, True
            connection.close()
        scheme, host, port = origin
        return _Connection(host, port, self._tls if scheme == "https" else None), False

    def checkin(self, origin: Origin, connection: _Connection) -> None:
        """Keep a connection whose answer was read whole, up to ``max_idle_per_origin``."""
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle_per_origin:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close every idle connection (tests, and the emulator's reload)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


_default_pool: ConnectionPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ConnectionPool:
    """The process's pool: created once, reused by every invocation of a warm function."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = ConnectionPool()
        return _default_pool


@dataclass(frozen=True)
class UpstreamResponse:
    """What an upstream answered: status, headers in received order (repeats kept), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any letter case), or None."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def _retryable(exc: Exception, first_on_reused: bool, method: str) -> bool:
    """A reset on a connection the pool had kept, before any answer, for a request that may
    be sent twice: the upstream closed it while idle, so one more try on a fresh one is safe."""
    stale = isinstance(exc, OSError | http.client.HTTPException) and not isinstance(
        exc, TimeoutError
    )
    return stale and first_on_reused and method in _IDEMPOTENT


@dataclass(frozen=True)
class _Request:
    """One request as sent, kept to send it again on a fresh connection."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes | None
    started: float
    deadline: float


class PendingResponse:
    """A request sent and not yet answered; :meth:`result` reads the answer, once."""

    def __init__(
        self, client: UpstreamClient, connection: _Connection, request: _Request, *, reused: bool
    ) -> None:
        self._client = client
        self._connection = connection
        self._request = request
        self._reused = reused

    def result(self) -> UpstreamResponse:
        """The whole answer, or an :class:`UpstreamError`; within the request's deadline."""
        client, connection, request = self._client, self._connection, self._request
        answered = False
        try:
            response = connection.getresponse()
            answered = True
            status, received, content = client._read(response)
        except Exception as exc:
            connection.close()
            if not answered and _retryable(exc, self._reused, request.method):
                logger.debug("stale pooled connection to %s, retrying", client.host_header)
                return client._send_within(request, fresh=True).result()
            raise client._wrap(exc, request) from exc

        if response.will_close:
            connection.close()
        else:
            client.pool.checkin(client.origin, connection)
        return UpstreamResponse(status, received, content, time.monotonic() - request.started)

    def cancel(self) -> None:
        """Give up on the answer: the connection is closed, never reused half-read."""
        self._connection.close()


class UpstreamClient:
    """Requests to one upstream base URL, each bounded by ``timeout`` seconds in total.

    ``base_url`` may carry a path (``http://tickets.internal:8080/v1``): request targets are
    appended to it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        pool: ConnectionPool | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"upstream URL must be http(s)://host[:port][/path], got {base_url!r}"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(
                f"upstream URL must not carry a query, fragment or credentials: {base_url!r}"
            )
        if timeout <= 0:
            raise ConfigError(f"upstream timeout must be positive, got {timeout}")
        default_port = 443 if parts.scheme == "https" else 80
        self.origin: Origin = (parts.scheme, parts.hostname, parts.port or default_port)
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc
        self.timeout = timeout
        self.pool = pool or default_pool()
        self.max_body_bytes = max_body_bytes

    def request(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> UpstreamResponse:
        """Send one request and read the whole answer; raise an :class:`UpstreamError` else.

        ``path`` must already be normalised; ``query`` is sent byte for byte.
        """
        return self.send(method, path, query=query, headers=headers, body=body).result()

    def send(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> PendingResponse:
        """Send one request now and return at once; read its answer with ``result()``.

        Requests sent to several upstreams before any answer is read run in parallel on one
        thread: each upstream works on its request while the caller waits for another's.
        """
        target = self.base_path + path + (f"?{query}" if query else "")
        started = time.monotonic()
        request = _Request(
            method.upper(), target, list(headers), body, started, started + self.timeout
        )
        return self._send_within(request, fresh=False)

    def _send_within(self, request: _Request, *, fresh: bool) -> PendingResponse:
        for attempt in range(2):
            connection, reused = self.pool.checkout(self.origin, fresh=fresh)
            connection.arm(request.deadline)
            try:
                self._send(connection, request)
            except Exception as exc:
                connection.close()
                if _retryable(exc, reused and attempt == 0, request.method):
                    continue
                raise self._wrap(exc, request) from exc
            return PendingResponse(self, connection, request, reused=reused)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _wrap(self, exc: Exception, request: _Request) -> UpstreamError:
        """The most specific public error for a low-level one."""
        where = f"{request.method} {self.host_header}{request.target}"
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout(f"{where}: no answer within {self.timeout}s")
        if isinstance(exc, OSError | http.client.HTTPException):
            return UpstreamUnavailable(f"{where}: {type(exc).__name__}: {exc}")
        if isinstance(exc, ValueError):
            # Checked after OSError: a certificate error is both. What is left is http.client
            # refusing a header name or value that would split the request.
            return RequestRejected(f"{where}: {exc}")
        raise exc

    def _send(self, connection: _Connection, request: _Request) -> None:
        method, body = request.method, request.body
        connection.putrequest(method, request.target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", self.host_header)
        for name, value in request.headers:
            connection.putheader(name, _header_bytes(value))
        if body or method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body or None)

    def _read(self, response: http.client.HTTPResponse) -> tuple[int, list[tuple[str, str]], bytes]:
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise ResponseTooLarge(f"{self.host_header} declared a {declared}-byte body")

        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body_bytes:
                raise ResponseTooLarge(f"{self.host_header} sent more than {size} bytes")
            chunks.append(chunk)
        if response.length:
            # http.client's read(amt) returns short at EOF instead of raising IncompleteRead.
            raise UpstreamUnavailable(
                f"{self.host_header} closed the connection {response.length} bytes short"
            )
        return response.status, response.getheaders(), b"".join(chunks)


def _header_bytes(value: str) -> bytes:
    """Header values go out as Latin-1 when they can, else as the UTF-8 API Gateway received."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")

"""One small HTTP/1.1 request and its answer on a pooled keep-alive connection.

Why not ``http.client`` here: it writes the head and the body in two sends (two segments, with
Nagle off) and parses each answer's headers through the ``email`` package; for a broadcast those
two cost as much CPU as everything else in a post together. A ``@connections`` answer is a status
line, a few headers and a short body, so this module writes the request in one ``sendall`` and
reads the answer with a small parser: ``Content-Length`` bodies, chunked bodies, and bodies
delimited by the connection's close, interim 1xx answers skipped.

Connections come from the layer's :class:`~gateway.upstream.client.ConnectionPool`: their
sockets re-arm their timeout to the request's deadline before every send and receive, so a post
never outlasts its deadline, TLS included. A pooled connection that the server closed while
idle is dropped before use; one that fails before a single byte of the answer arrived is taken
to be stale, and the request goes once more on a fresh connection.
"""

from __future__ import annotations

import socket
import time
from typing import NamedTuple

from gateway.upstream.client import ConnectionPool, Origin
from gateway.upstream.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

__all__ = ["MAX_ANSWER_BYTES", "Answer", "exchange"]

MAX_ANSWER_BYTES = 64 * 1024
_READ = 16 * 1024


class Answer(NamedTuple):
    """A status, the headers in received order (names lower-cased) and the body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class _Stale(Exception):
    """The connection ended before any byte of the answer."""


def exchange(pool: ConnectionPool, origin: Origin, request: bytes, timeout: float) -> Answer:
    """Send ``request`` (head and body, complete) to ``origin`` and read the whole answer.

    Raises :class:`~gateway.upstream.errors.UpstreamTimeout` past ``timeout`` seconds, and
    :class:`~gateway.upstream.errors.UpstreamUnavailable` when the connection fails or the
    answer is not HTTP.
    """
    deadline = time.monotonic() + timeout
    where = f"{origin[0]}://{origin[1]}:{origin[2]}"
    fresh = False
    while True:
        connection, reused = pool.checkout(origin, fresh=fresh)
        connection.arm(deadline)
        try:
            if connection.sock is None:
                connection.connect()
            sock = connection.sock
            try:
                sock.sendall(request)
            except ConnectionError as exc:
                raise _Stale from exc
            answer, keep_alive = _read_answer(sock)
        except _Stale as exc:
            connection.close()
            if reused and not fresh:
                fresh = True
                continue
            raise UpstreamUnavailable(f"{where}: closed the connection without answering") from exc
        except TimeoutError as exc:
            connection.close()
            raise UpstreamTimeout(f"{where}: no answer within {timeout}s") from exc
        except UpstreamError:
            connection.close()
            raise
        except OSError as exc:
            connection.close()
            raise UpstreamUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
        if keep_alive:
            pool.checkin(origin, connection)
        else:
            connection.close()
        return answer


def _read_answer(sock: socket.socket) -> tuple[Answer, bool]:
    buffer = bytearray()
    first = True
    while True:
        end = _fill_until(sock, buffer, b"\r\n\r\n", first=first)
        first = False
        status, version, headers = _parse_head(bytes(buffer[:end]))
        del buffer[: end + 4]
        if 100 <= status < 200:
            continue  # interim answer (100 Continue): the real one follows
        break

    fields = dict(headers)
    keep_alive = _keep_alive(version, fields.get("connection", ""))
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _read_chunked(sock, buffer)
    elif "content-length" in fields:
        length = _length(fields["content-length"])
        _fill_to(sock, buffer, length)
        body = bytes(buffer[:length])
    else:
        body = _read_to_close(sock, buffer)
        keep_alive = False
    return Answer(status, headers, body), keep_alive


def _fill_until(sock: socket.socket, buffer: bytearray, marker: bytes, *, first: bool) -> int:
    while True:
        end = buffer.find(marker)
        if end >= 0:
            return end
        if len(buffer) > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable("answer head too large")
        chunk = _recv(sock, stale_if_empty=first and not buffer)
        if not chunk:
            raise UpstreamUnavailable("connection closed in the middle of an answer")
        buffer += chunk


def _fill_to(sock: socket.socket, buffer: bytearray, size: int) -> None:
    while len(buffer) < size:
        chunk = _recv(sock, stale_if_empty=False)
        if not chunk:
            raise UpstreamUnavailable(f"connection closed {size - len(buffer)} bytes short")
        buffer += chunk


def _recv(sock: socket.socket, *, stale_if_empty: bool) -> bytes:
    try:
        chunk = sock.recv(_READ)
    except ConnectionError as exc:
        if stale_if_empty:
            raise _Stale from exc
        raise
    if not chunk and stale_if_empty:
        raise _Stale
    return chunk


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise UpstreamUnavailable(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise UpstreamUnavailable(f"malformed header line: {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    return int(parts[1]), parts[0], headers


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {token.strip() for token in connection.lower().split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _length(text: str) -> int:
    if not text.isdigit():
        raise UpstreamUnavailable(f"bad Content-Length {text[:40]!r}")
    length = int(text)
    if length > MAX_ANSWER_BYTES:
        raise UpstreamUnavailable(f"answer body of {length} bytes is larger than expected")
    return length


def _read_chunked(sock: socket.socket, buffer: bytearray) -> bytes:
    body = bytearray()
    while True:
        end = _fill_until(sock, buffer, b"\r\n", first=False)
        size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise UpstreamUnavailable(f"bad chunk size {size_text[:20]!r}") from None
        del buffer[: end + 2]
        if size == 0:
            # Trailers, if any, end with an empty line like the head does.
            while True:
                end = _fill_until(sock, buffer, b"\r\n", first=False)
                del buffer[: end + 2]
                if end == 0:
                    return bytes(body)
        if len(body) + size > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable("chunked answer body larger than expected")
        _fill_to(sock, buffer, size + 2)
        body += buffer[:size]
        del buffer[: size + 2]


def _read_to_close(sock: socket.socket, buffer: bytearray) -> bytes:
    while True:
        if len(buffer) > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable("answer body larger than expected")
        chunk = _recv(sock, stale_if_empty=False)
        if not chunk:
            return bytes(buffer)
        buffer += chunk

"""A small asyncio HTTP/1.1 server: keep-alive, pipelining, chunked bodies, 100-continue.

It parses requests into :class:`~localgw.events.HttpRequest`, hands each to an async handler, and
writes the :class:`~localgw.events.HttpResponse` back, in order. It knows nothing of API Gateway.
Limits: request line and headers together at most 64 KB (else 431), a body at most
``max_body`` bytes (else 413, API Gateway's 10 MB by default; the connection then closes, since
the unread body cannot be skipped safely).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

from localgw.events import HttpRequest, HttpResponse, error_response

__all__ = ["Handler", "HttpServer", "serve_http"]

logger = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]

MAX_HEAD_BYTES = 64 * 1024
DEFAULT_MAX_BODY = 10 * 1024 * 1024


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Connection(asyncio.Protocol):
    """One client connection; requests are handled one after another (pipelined ones queue)."""

    def __init__(self, handler: Handler, max_body: int, tracker: set[_Connection]) -> None:
        self.handler = handler
        self.max_body = max_body
        self.tracker = tracker
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = "127.0.0.1"
        self.wakeup = asyncio.Event()
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.continue_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0])
        self.tracker.add(self)
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.wakeup.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.wakeup.set()
        self.tracker.discard(self)

    async def _more(self) -> None:
        self.wakeup.clear()
        if self.closed:
            raise ConnectionResetError
        await self.wakeup.wait()
        if self.closed and not self.buffer:
            raise ConnectionResetError

    async def _read_head(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[:end])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise _BadRequest(431, "request head too large")
            await self._more()

    async def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._more()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def _read_line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise _BadRequest(400, "chunk size line too long")
            await self._more()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def _send_continue(self, headers: list[tuple[str, str]]) -> None:
        expect = next((v for k, v in headers if k.lower() == "expect"), "")
        if expect.lower() == "100-continue" and self.transport and not self.continue_sent:
            self.continue_sent = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _read_body(self, headers: list[tuple[str, str]]) -> bytes:
        lowered = {k.lower(): v for k, v in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            self._send_continue(headers)
            return await self._read_chunked()
        length_text = lowered.get("content-length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise _BadRequest(400, "bad Content-Length")
        length = int(length_text)
        if length > self.max_body:
            raise _BadRequest(413, "body too large")
        if length:
            self._send_continue(headers)
        return await self._read_exact(length)

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_text = (await self._read_line()).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise _BadRequest(400, "bad chunk size") from exc
            if size == 0:
                while await self._read_line():  # trailers, up to the empty line
                    pass
                return bytes(body)
            if len(body) + size > self.max_body:
                raise _BadRequest(413, "body too large")
            body += await self._read_exact(size)
            await self._read_exact(2)

    def _parse_head(self, head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
        try:
            text = head.decode("latin-1")
            request_line, *header_lines = text.split("\r\n")
            method, target, version = request_line.split(" ")
        except ValueError as exc:
            raise _BadRequest(400, "bad request line") from exc
        if not version.startswith("HTTP/1."):
            raise _BadRequest(505, "only HTTP/1.x")
        headers: list[tuple[str, str]] = []
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "bad header line")
            headers.append((name, value.strip()))
        return method, target, version, headers

    async def _serve(self) -> None:
        try:
            while not self.closed:
                if not self.buffer:
                    await self._more()
                    continue
                if not await self._serve_one():
                    break
        except ConnectionResetError:
            pass
        except _BadRequest as exc:
            self._write(_plain_error(exc.status), keep_alive=False)
        except Exception:
            logger.exception("HTTP connection from %s failed", self.peer)
        finally:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

    async def _serve_one(self) -> bool:
        self.continue_sent = False
        head = await self._read_head()
        method, target, version, headers = self._parse_head(head)
        body = await self._read_body(headers)
        path, _, query = target.partition("?")
        request = HttpRequest(method, path, query, headers, body, self.peer, version)
        connection = (request.header("connection") or "").lower()
        keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        try:
            response = await self.handler(request)
        except Exception:
            logger.exception("handler failed on %s %s", method, path)
            response = error_response(500)
        self._write(response, keep_alive=keep_alive, head_only=method == "HEAD")
        return keep_alive

    def _write(self, response: HttpResponse, *, keep_alive: bool, head_only: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = _reason(response.status)
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        skip = {"content-length", "connection", "transfer-encoding", "date"}
        lines.extend(
            f"{name}: {value}" for name, value in response.headers if name.lower() not in skip
        )
        lines.append(f"date: {_http_date()}")
        if response.status not in {204, 304} and not 100 <= response.status < 200:
            lines.append(f"content-length: {len(response.body)}")
        lines.append("connection: keep-alive" if keep_alive else "connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        if not head_only and response.status not in {204, 304}:
            data += response.body
        self.transport.write(data)


_REASONS = {status.value: status.phrase for status in HTTPStatus}
_DATE: list[Any] = [0, ""]


def _reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def _http_date() -> str:
    """The Date header's value, formatted once per second (it changes no faster)."""
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[0], _DATE[1] = now, email.utils.formatdate(now, usegmt=True)
    return str(_DATE[1])


def _plain_error(status: int) -> HttpResponse:
    if status in {400, 413}:
        return error_response(status)
    return HttpResponse(status, [("content-type", "text/plain")], _reason(status).encode())


class HttpServer:
    """A listening server; :meth:`close` stops accepting and closes every open connection."""

    def __init__(self, server: asyncio.Server, connections: set[_Connection]) -> None:
        self.server = server
        self.connections = connections

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
            if connection.task is not None:
                connection.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await connection.task
        await self.server.wait_closed()


async def serve_http(
    handler: Handler, host: str = "127.0.0.1", port: int = 0, *, max_body: int = DEFAULT_MAX_BODY
) -> HttpServer:
    """Listen on ``host:port`` (0: a free port) and serve ``handler``."""
    connections: set[_Connection] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(handler, max_body, connections), host, port, reuse_address=True
    )
    return HttpServer(server, connections)

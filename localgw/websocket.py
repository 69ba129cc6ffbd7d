"""The WebSocket API server: one asyncio HTTP/1.1 listener for the WebSocket handshake and for the
``@connections`` management API, on 127.0.0.1:3001 by default.

A request that asks to upgrade becomes a WebSocket connection, driven by the sans-I/O
``websockets.server.ServerProtocol``; any other request is a management API call
(:mod:`localgw.management`), answered with keep-alive. The AWS rules live in
:mod:`localgw.websocket_api`; this module moves bytes and runs the functions.

Lifecycle of a connection, as API Gateway runs it:

1. ``$connect``: the route's REQUEST authorizer first (a missing identity source refuses the
   handshake with 401 without calling it, a deny with 403, a failure with 500), then the route's
   function (an answer whose ``statusCode`` is not 2xx refuses the handshake with that status,
   a crash with 500). Only then is the 101 sent and the connection registered.
2. Each message goes to the route its body selects; a route with a RouteResponse sends the
   function's ``body`` back to the client. Messages of one connection run one at a time, in
   order. A frame over 32 KB or a message over 128 KB closes the connection with 1009.
3. ``$disconnect`` runs once whichever side closed, with the close code and reason; also when the
   idle timeout (10 minutes) or the maximum duration (2 hours) closes it, with 1001.

Log levels: INFO for a connection opened or closed, WARNING for a refused handshake or a failed
route, DEBUG for each message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from localgw.management import POSTED, ConnectionGone, ConnectionRegistry, handle_management
from localgw.websocket_api import (
    FRAME_LIMIT_BYTES,
    IDLE_TIMEOUT_SECONDS,
    MAX_CONNECTION_SECONDS,
    MESSAGE_LIMIT_BYTES,
    ConnectionInfo,
    InvocationError,
    Invoker,
    WebSocketApi,
    authorizer_event,
    connect_event,
    disconnect_event,
    identity_values,
    message_event,
    new_connection_id,
    parse_query,
    read_authorizer_response,
    select_route,
)

__all__ = ["InvocationError", "Invoker", "WebSocketServer", "WebSocketSettings"]

log = logging.getLogger(__name__)

HEAD_LIMIT_BYTES = 16 * 1024
MANAGEMENT_BODY_LIMIT_BYTES = 10 * 1024 * 1024
_WRITE_HIGH_WATER = 1024 * 1024
CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class WebSocketSettings:
    """Where to listen and AWS's limits; shorter timeouts are for tests."""

    host: str = "127.0.0.1"
    port: int = 3001
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    max_duration: float = MAX_CONNECTION_SECONDS
    frame_limit: int = FRAME_LIMIT_BYTES
    message_limit: int = MESSAGE_LIMIT_BYTES


class _Head:
    """A parsed request head; what the hot path asks of it is worked out once, when parsed."""

    __slots__ = ("_index", "keep_alive", "method", "raw", "target", "upgrade", "version")

    def __init__(
        self, method: str, target: str, version: str, raw: bytes, index: dict[str, str]
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.raw = raw
        self._index = index
        self.upgrade = index.get("upgrade", "").lower() == "websocket"
        connection = index.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        else:
            self.keep_alive = "close" not in connection

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (a lower-case name), whatever its case on the wire."""
        return self._index.get(name)


class _BadRequest(Exception):
    pass


def _parse_head(raw: bytes) -> _Head:
    request_line, *lines = raw.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest("malformed request line")
    # Only the first value of each header counts, and nothing but this index reads them.
    index: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        key = name.strip().lower()
        if not sep or not key:
            raise _BadRequest("malformed header line")
        if key not in index:
            index[key] = value.strip()
    return _Head(parts[0].upper(), parts[1], parts[2], raw, index)


def _content_length(head: _Head) -> int:
    index = head._index
    text = index.get("content-length") or "0"
    if index.get("transfer-encoding") or not text.isdigit():
        raise _BadRequest("only Content-Length bodies are read")
    return int(text)


def _http_response(
    status: int, reason: str, headers: list[tuple[str, str]], body: bytes, *, keep_alive: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    410: "Gone",
    413: "Payload Too Large",
    426: "Upgrade Required",
}


_POSTED = _http_response(200, "OK", [], b"", keep_alive=True)


class WebSocketServer:
    """Serve one WebSocket API and its ``@connections`` endpoint."""

    def __init__(
        self, api: WebSocketApi, invoke: Invoker, settings: WebSocketSettings | None = None
    ) -> None:
        self.api = api
        self.invoke = invoke
        self.settings = settings or WebSocketSettings()
        self.registry = ConnectionRegistry()
        self._server: asyncio.Server | None = None
        self._socket: socket.socket | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._http_connections: set[_Gateway] = set()

    @property
    def port(self) -> int:
        """The port actually bound (the settings may ask for 0)."""
        assert self._socket is not None, "the server is not bound"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}"

    @property
    def management_url(self) -> str:
        """The local ``@connections`` endpoint, stage included, for boto3's ``endpoint_url``."""
        return f"http://{self.settings.host}:{self.port}/{self.api.stage}"

    def bind(self) -> None:
        """Take the listening socket now, so that the port is known before anything starts."""
        if self._socket is None:
            self._socket = socket.create_server((self.settings.host, self.settings.port))
            self._socket.setblocking(False)

    async def start(self) -> None:
        self.bind()
        assert self._socket is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Gateway(self), sock=self._socket)
        log.info(
            "WebSocket API %s on %s (@connections at %s)",
            self.api.logical_id,
            self.url,
            self.management_url,
        )

    async def close(self) -> None:
        """Stop listening, close every connection with 1001 (each runs ``$disconnect``)."""
        if self._server is not None:
            self._server.close()
        for gateway in list(self._http_connections):
            gateway.close()
        for connection in self.registry:
            connection.delete(1001, "Going away")
        if self._sessions:
            _, pending = await asyncio.wait(self._sessions, timeout=CLOSE_TIMEOUT * 2)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        elif self._socket is not None:
            self._socket.close()

    async def call(self, function: str, event: dict[str, Any]) -> Any:
        """Invoke ``function``; any failure, even one of the runtime itself, is an
        :class:`InvocationError` to the caller (and a traceback in the log when unexpected)."""
        try:
            return await self.invoke(function, event)
        except InvocationError:
            raise
        except Exception as exc:
            log.exception("invoking %s failed", function)
            raise InvocationError(f"{function}: {exc!r}") from exc

    async def _websocket(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: _Head
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await _Session(self, reader, writer, head).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            log.debug("client went away mid-handshake")
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _Gateway(asyncio.StreamReaderProtocol):
    """One TCP connection: HTTP/1.1 management requests until it asks to upgrade.

    Management requests are parsed straight from ``data_received`` and answered in one pass:
    pipelined requests (a broadcast sends many) get one write for all their responses. An
    upgrade hands the bytes to a stream reader and the connection to a :class:`_Session`.
    """

    def __init__(self, server: WebSocketServer) -> None:
        self._gateway_reader = asyncio.StreamReader(limit=HEAD_LIMIT_BYTES)
        super().__init__(self._gateway_reader)
        self._server = server
        self._pending = bytearray()
        self._upgraded = False
        self._gateway_transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._gateway_transport = cast(asyncio.Transport, transport)
        self._server._http_connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._http_connections.discard(self)
        super().connection_lost(exc)

    def close(self) -> None:
        if self._gateway_transport is not None and not self._upgraded:
            self._gateway_transport.close()

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            super().data_received(data)
            return
        self._pending += data
        answers: list[bytes] = []
        try:
            keep_open = self._answer_pending(answers)
        except _BadRequest as exc:
            log.warning("bad HTTP request: %s", exc)
            answers.append(_http_response(400, "Bad Request", [], b"", keep_alive=False))
            keep_open = False
        transport = self._gateway_transport
        assert transport is not None
        if answers:
            transport.write(b"".join(answers))
        if not keep_open:
            transport.close()

    def _answer_pending(self, answers: list[bytes]) -> bool:
        """Answer every complete request in the buffer; False when the connection must close."""
        pending = self._pending
        start = (
            0  # what is answered is cut from the buffer once, at the end: cheaper than per request
        )
        try:
            while True:
                end = pending.find(b"\r\n\r\n", start)
                if end < 0:
                    if len(pending) - start > HEAD_LIMIT_BYTES:
                        raise _BadRequest("request head too large")
                    return True
                head = _parse_head(bytes(pending[start : end + 4]))
                if head.upgrade:
                    del pending[:start]
                    start = 0
                    self._upgrade(head, answers)
                    return True
                length = _content_length(head)
                if length > MANAGEMENT_BODY_LIMIT_BYTES:
                    body = b'{"message":"Request Entity Too Large"}'
                    answers.append(
                        _http_response(413, "Payload Too Large", [], body, keep_alive=False)
                    )
                    return False
                total = end + 4 + length
                if len(pending) < total:
                    return True
                body = bytes(pending[end + 4 : total])
                start = total
                answers.append(self._answer(head, body))
                if not head.keep_alive:
                    return False
        finally:
            if start:
                del pending[:start]

    def _answer(self, head: _Head, body: bytes) -> bytes:
        answer = handle_management(self._server.registry, head.method, head.target, body)
        if answer is POSTED and head.keep_alive:
            return _POSTED  # the common answer of a broadcast, built once
        reason = _REASONS.get(answer.status, "Error")
        return _http_response(
            answer.status, reason, list(answer.headers), answer.body, keep_alive=head.keep_alive
        )

    def _upgrade(self, head: _Head, answers: list[bytes]) -> None:
        transport = self._gateway_transport
        assert transport is not None
        if answers:
            transport.write(b"".join(answers))
            answers.clear()
        self._upgraded = True
        self._server._http_connections.discard(self)
        rest = bytes(self._pending[len(head.raw) :])
        self._pending.clear()
        if rest:
            super().data_received(rest)
        loop = asyncio.get_running_loop()
        writer = asyncio.StreamWriter(transport, self, self._gateway_reader, loop)
        task = loop.create_task(self._server._websocket(self._gateway_reader, writer, head))
        self._server._sessions.add(task)


class _Session:
    """One WebSocket connection, from handshake to ``$disconnect``."""

    def __init__(
        self,
        server: WebSocketServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: _Head,
    ) -> None:
        self.server = server
        self.api = server.api
        self.reader = reader
        self.writer = writer
        self.head = head
        settings = server.settings
        self.protocol = ServerProtocol(max_size=(settings.message_limit, settings.frame_limit))
        self.connection_id = new_connection_id()
        self.connected_at = time.time()
        self.last_active_at = self.connected_at
        self._idle_from = time.monotonic()
        peer = writer.get_extra_info("peername")
        self.source_ip = str(peer[0]) if peer else "127.0.0.1"
        self.user_agent = head.header("user-agent") or ""
        self.info: ConnectionInfo | None = None
        self._inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._closed_by_server: tuple[int, str] | None = None
        self._wake = asyncio.Event()
        self._closing_since: float | None = None
        # The broadcast hot path writes whole frames straight to the transport, up to this size.
        self._transport = writer.transport
        self._whole_frame_limit = min(65535, settings.frame_limit)

    # the LiveConnection side, used by the management API ------------------------------------

    def post(self, data: bytes) -> None:
        if self.protocol.state is not State.OPEN:
            raise ConnectionGone(self.connection_id)
        is_text = data.isascii() or _is_utf8(data)
        length = len(data)
        if length <= self._whole_frame_limit:
            # The hot path of a broadcast: one whole unmasked frame, written as it is, in one
            # transport write. The protocol object keeps no state about complete outgoing data
            # frames.
            if length < 126:
                head = bytes((0x81 if is_text else 0x82, length))
            else:
                head = bytes((0x81 if is_text else 0x82, 126, length >> 8, length & 0xFF))
            self._transport.write(head + data)
            self.last_active_at = time.time()
            return
        text = data if is_text else None
        chunk = self.server.settings.frame_limit
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
        if text is not None:
            self.protocol.send_text(pieces[0], fin=len(pieces) == 1)
        else:
            self.protocol.send_binary(pieces[0], fin=len(pieces) == 1)
        for index, piece in enumerate(pieces[1:], start=2):
            self.protocol.send_continuation(piece, fin=index == len(pieces))
        self.last_active_at = time.time()
        self._write()

    def delete(self, code: int = 1000, reason: str = "") -> None:
        if self.protocol.state is State.OPEN:
            self._closed_by_server = (code, reason)
            self._closing_since = time.monotonic()
            self.protocol.send_close(code, reason)
            self._write()
            self._wake.set()

    # handshake ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.protocol.receive_data(self.head.raw)
        events = self.protocol.events_received()
        if not events or not isinstance(events[0], Request):
            await self._flush()
            return
        request = events[0]
        response = self.protocol.accept(request)
        if response.status_code == 101:
            refusal = await self._connect(request)
            if refusal is not None:
                status, body = refusal
                response = self.protocol.reject(status, body)
                response.headers["Content-Type"] = "application/json"
        self.protocol.send_response(response)
        await self._flush()
        if response.status_code != 101:
            return

        self.server.registry.add(self)
        log.info("connection %s opened from %s", self.connection_id, self.source_ip)
        worker = asyncio.create_task(self._work())
        try:
            await self._receive()
        finally:
            self.server.registry.discard(self.connection_id)
            await self._inbox.put(None)
            await worker
            await self._disconnect()

    def _connection_info(self, request: Request) -> ConnectionInfo:
        _, _, query_text = request.path.partition("?")
        query, multi_query = parse_query(query_text)
        headers: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers.raw_items():
            multi.setdefault(name, []).append(value)
            headers[name] = ",".join(multi[name])
        headers.setdefault("X-Forwarded-For", self.source_ip)
        multi.setdefault("X-Forwarded-For", [self.source_ip])
        return ConnectionInfo(
            connection_id=self.connection_id,
            connected_at_ms=int(self.connected_at * 1000),
            source_ip=self.source_ip,
            user_agent=self.user_agent,
            headers=headers,
            multi_headers=multi,
            query=query,
            multi_query=multi_query,
        )

    async def _connect(self, request: Request) -> tuple[int, str] | None:  # noqa: PLR0911
        """Run the authorizer and ``$connect``; a refusal as (status, body), or None to accept."""
        self.info = info = self._connection_info(request)
        route = self.api.routes.get("$connect")
        if route is None:
            return None
        if route.authorizer is not None:
            if identity_values(route.authorizer, info) is None:
                log.warning("connection refused: identity source missing (401)")
                return 401, '{"message":"Unauthorized"}'
            try:
                answer = await self.server.call(
                    route.authorizer.function, authorizer_event(self.api, info)
                )
            except InvocationError as exc:
                log.warning("connection refused: the authorizer failed (500): %s", exc)
                return 500, '{"message":"Internal server error"}'
            decision = read_authorizer_response(answer, self.api.method_arn("$connect"))
            if not decision.allowed:
                log.warning(
                    "connection refused by the authorizer (403)%s",
                    f": {decision.error}" if decision.error else "",
                )
                return 403, '{"message":"Forbidden"}'
            info.authorizer = decision.context
        if route.function is None:
            return None
        try:
            answer = await self.server.call(route.function, connect_event(self.api, info))
        except InvocationError as exc:
            log.warning("connection refused: $connect failed (500): %s", exc)
            return 500, '{"message":"Internal server error"}'
        status = _status_of(answer)
        if not 200 <= status < 300:
            log.warning("connection refused: $connect answered %s", status)
            return status, '{"message":"Forbidden"}' if status == 403 else ""
        return None

    # frames ---------------------------------------------------------------------------------

    async def _receive(self) -> None:
        settings = self.server.settings
        closes_at = time.monotonic() + settings.max_duration
        while self.protocol.state is not State.CLOSED:
            now = time.monotonic()
            if self._closing_since is not None and now - self._closing_since > CLOSE_TIMEOUT:
                log.info("connection %s: no closing handshake from the client", self.connection_id)
                break
            wait = min(self._idle_from + settings.idle_timeout, closes_at) - now
            if wait <= 0 and self.protocol.state is State.OPEN:
                reason = "Going away"
                self.delete(1001, reason)
                log.info(
                    "connection %s closed by the %s limit",
                    self.connection_id,
                    "duration" if now >= closes_at else "idle",
                )
                continue
            data = await self._read(max(wait, 0.05))
            if data is None:
                continue
            if not data:
                self.protocol.receive_eof()
            else:
                self.protocol.receive_data(data)
            self._idle_from = time.monotonic()
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    await self._frame(event)
            await self._flush()
            if not data:
                break

    async def _read(self, timeout: float) -> bytes | None:
        """Bytes from the client, b"" at EOF, or None when the timeout or a server close woke us."""
        self._wake.clear()
        read = asyncio.ensure_future(self.reader.read(65536))
        woken = asyncio.ensure_future(self._wake.wait())
        done, _ = await asyncio.wait(
            {read, woken}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        woken.cancel()
        if read not in done:
            read.cancel()
        try:
            return await read
        except asyncio.CancelledError:
            return None
        except ConnectionError:
            return b""

    async def _frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments = [bytes(frame.data)]
            self._fragment_text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            return
        if not frame.fin:
            return
        payload = b"".join(self._fragments)
        self._fragments = []
        self.last_active_at = time.time()
        if not self._fragment_text:
            await self._inbox.put(payload)
            return
        try:
            await self._inbox.put(payload.decode("utf-8"))
        except UnicodeDecodeError:
            # RFC 6455: a text message that is not UTF-8 fails the connection with 1007.
            log.warning("connection %s sent a text message that is not UTF-8", self.connection_id)
            self.protocol.fail(1007, "invalid UTF-8 in a text message")
            self._write()

    async def _work(self) -> None:
        while (message := await self._inbox.get()) is not None:
            try:
                await self._message(message)
            except ConnectionGone:
                log.debug("connection %s gone before its answer", self.connection_id)

    async def _message(self, message: str | bytes) -> None:
        assert self.info is not None
        route_key = select_route(
            self.api.route_selection_expression, message, frozenset(self.api.routes)
        )
        route = self.api.routes.get(route_key)
        event = message_event(self.api, self.info, route_key, message)
        request_id = event["requestContext"]["requestId"]
        log.debug("connection %s: message to %s", self.connection_id, route_key)
        if route is None or route.function is None:
            await self._tell(
                {
                    "message": "Forbidden",
                    "connectionId": self.connection_id,
                    "requestId": request_id,
                }
            )
            return
        try:
            answer = await self.server.call(route.function, event)
        except InvocationError as exc:
            log.warning("route %s failed on connection %s: %s", route_key, self.connection_id, exc)
            await self._tell(
                {
                    "message": "Internal server error",
                    "connectionId": self.connection_id,
                    "requestId": request_id,
                }
            )
            return
        if route.has_route_response:
            body = _body_of(answer)
            if body is not None:
                self.post(body.encode("utf-8"))

    async def _tell(self, payload: dict[str, Any]) -> None:
        self.post(json.dumps(payload).encode())

    def _write(self) -> None:
        """Hand what the protocol has to send to the transport, without waiting."""
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.writer.write(chunk)
            elif self.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    self.writer.write_eof()

    async def _flush(self) -> None:
        self._write()
        if self.writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def _disconnect(self) -> None:
        assert self.info is not None
        code, reason = 1006, ""
        if self._closed_by_server is not None:
            code, reason = self._closed_by_server
        elif self.protocol.close_rcvd is not None:
            code, reason = self.protocol.close_rcvd.code, self.protocol.close_rcvd.reason
        elif self.protocol.close_sent is not None:
            code, reason = self.protocol.close_sent.code, self.protocol.close_sent.reason
        log.info("connection %s closed (%s %s)", self.connection_id, code, reason)
        route = self.api.routes.get("$disconnect")
        if route is None or route.function is None:
            return
        try:
            await self.server.call(
                route.function, disconnect_event(self.api, self.info, code, reason)
            )
        except InvocationError as exc:
            log.warning("$disconnect failed for %s: %s", self.connection_id, exc)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _status_of(answer: Any) -> int:
    if isinstance(answer, dict) and "statusCode" in answer:
        try:
            return int(answer["statusCode"])
        except (TypeError, ValueError):
            return 500
    return 200


def _body_of(answer: Any) -> str | None:
    if isinstance(answer, dict):
        body = answer.get("body")
        if body is None:
            return None
        return body if isinstance(body, str) else json.dumps(body)
    if isinstance(answer, str):
        return answer
    if answer is None:
        return None
    return json.dumps(answer)

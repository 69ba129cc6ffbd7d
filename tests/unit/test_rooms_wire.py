"""The broadcast's HTTP/1.1 exchange against scripted servers on real loopback sockets: each kind
of answer body, interim answers, keep-alive and close, a stale pooled connection, a silent
server, and answers that are not HTTP."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.rooms.wire import MAX_ANSWER_BYTES, exchange
from gateway.upstream.client import ConnectionPool
from gateway.upstream.errors import UpstreamTimeout, UpstreamUnavailable
from tests.support.upstreams import Upstream, echo, self_signed_tls

REQUEST = b"POST /dev/@connections/c-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

Script = Callable[[socket.socket, int], None]


def read_request(conn: socket.socket) -> bytes:
    """One whole request of the kind ``REQUEST`` is (a head and a two-byte body)."""
    data = b""
    while not data.endswith(b"\r\n\r\n{}"):
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


class ScriptedServer:
    """Accepts connections on loopback; ``script(conn, index)`` serves the index-th one."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.accepted = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._threads: list[threading.Thread] = []

    @property
    def origin(self) -> tuple[str, str, int]:
        return ("http", "127.0.0.1", int(self._listener.getsockname()[1]))

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            index = self.accepted
            self.accepted += 1
            thread = threading.Thread(target=self._one, args=(conn, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _one(self, conn: socket.socket, index: int) -> None:
        with conn:
            try:
                self.script(conn, index)
            except OSError:
                return

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        # Closing alone does not wake a thread blocked in accept(); shutting down does.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _answer_with(raw: bytes) -> Script:
    def script(conn: socket.socket, index: int) -> None:
        read_request(conn)
        conn.sendall(raw)

    return script


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b'HTTP/1.1 410 Gone\r\nContent-Length: 12\r\n\r\n{"a": null}\n', b'{"a": null}\n'),
        (
            b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"hello world",
        ),
        (b"HTTP/1.0 500 Oops\r\n\r\nuntil the close", b"until the close"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
    ],
    ids=["content-length", "chunked-with-trailer", "close-delimited", "after-100-continue"],
)
def test_every_kind_of_answer_body_is_read_whole(
    serve: Callable[[Script], ScriptedServer], raw: bytes, body: bytes
) -> None:
    server = serve(_answer_with(raw))
    pool = ConnectionPool()

    answer = exchange(pool, server.origin, REQUEST, 2.0)
    pool.close()

    assert answer.status == int(raw.rsplit(b"HTTP/1.", 1)[1][2:5])
    assert answer.body == body


def test_headers_are_read_with_lower_cased_names(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    raw = b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\nContent-Length: 0\r\n\r\n"
    server = serve(_answer_with(raw))
    pool = ConnectionPool()

    answer = exchange(pool, server.origin, REQUEST, 2.0)
    pool.close()

    assert answer.header("x-amzn-errortype") == "GoneException"
    assert answer.header("content-type") is None


def test_keep_alive_answers_reuse_one_connection_and_close_answers_do_not(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: socket.socket, index: int) -> None:
        for number in range(3):
            if not read_request(conn):
                return
            last = index == 0 and number == 2
            conn.sendall(
                OK if not last else OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
            )
            if last:
                return

    server = serve(script)
    pool = ConnectionPool()

    statuses = [exchange(pool, server.origin, REQUEST, 2.0).status for _ in range(4)]
    pool.close()

    assert statuses == [200, 200, 200, 200]
    assert server.accepted == 2


def test_stale_pooled_connection_is_replaced_and_the_request_sent_again(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    # The first connection answers once, then takes the next request and closes without a word,
    # as a server does that timed the idle connection out just as the request was sent.
    received: list[int] = []

    def script(conn: socket.socket, index: int) -> None:
        read_request(conn)
        received.append(index)
        if index == 0:
            conn.sendall(OK)
            read_request(conn)
            received.append(index)
            return
        conn.sendall(OK)

    server = serve(script)
    pool = ConnectionPool()

    first = exchange(pool, server.origin, REQUEST, 2.0)
    second = exchange(pool, server.origin, REQUEST, 2.0)
    pool.close()

    assert (first.status, second.status) == (200, 200)
    assert received == [0, 0, 1]


def test_fresh_connection_closed_without_an_answer_is_unavailable_and_not_retried(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    server = serve(lambda conn, index: read_request(conn) and None)
    pool = ConnectionPool()

    with pytest.raises(UpstreamUnavailable, match="without answering"):
        exchange(pool, server.origin, REQUEST, 2.0)

    assert server.accepted == 1


def test_silent_server_times_out_at_the_deadline(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    release = threading.Event()

    def script(conn: socket.socket, index: int) -> None:
        read_request(conn)
        release.wait(5)

    server = serve(script)
    pool = ConnectionPool()

    with pytest.raises(UpstreamTimeout):
        exchange(pool, server.origin, REQUEST, 0.3)
    release.set()


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1),
    ],
    ids=["not-http", "bad-header", "bad-length", "short-body", "bad-chunk", "too-large"],
)
def test_answer_that_is_not_valid_http_is_unavailable(
    serve: Callable[[Script], ScriptedServer], raw: bytes
) -> None:
    server = serve(_answer_with(raw))
    pool = ConnectionPool()

    with pytest.raises(UpstreamUnavailable):
        exchange(pool, server.origin, REQUEST, 2.0)
    pool.close()


def test_exchange_over_tls_keeps_one_connection_and_refuses_an_untrusted_certificate(
    tmp_path: Path,
) -> None:
    server_tls, client_tls = self_signed_tls(tmp_path)
    pool = ConnectionPool(tls=client_tls)
    try:
        with Upstream(echo(), tls=server_tls) as upstream:
            origin = ("https", "127.0.0.1", upstream.port)
            statuses = [exchange(pool, origin, REQUEST, 2.0).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert upstream.accepts == 1

        with Upstream(echo(), tls=server_tls) as upstream, pytest.raises(UpstreamUnavailable):
            exchange(ConnectionPool(), ("https", "127.0.0.1", upstream.port), REQUEST, 2.0)
        assert upstream.requests == []
    finally:
        pool.close()

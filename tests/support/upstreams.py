"""Upstream HTTP servers for the tests, each on a loopback port 0, each counting its accepts.

An :class:`Upstream` records every request it reads and answers through a *behaviour*: a callable
that writes the response on the handler. The factories below cover what the gateway must survive:
an echo, a slow answer, a drip-fed answer, failures, a connection closed early, a huge body, a
binary body, repeated ``Set-Cookie`` headers. A ``threading.Barrier`` shared between two upstreams
makes them answer only once both have a request in hand, which proves two calls ran in parallel.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.loopback import LoopbackServer

__all__ = [
    "LambdaContext",
    "Recorded",
    "Upstream",
    "binary",
    "close_early",
    "drip",
    "echo",
    "huge",
    "json_answer",
    "raw",
    "self_signed_tls",
    "slow",
    "status",
    "truncated",
]


@dataclass(frozen=True)
class Recorded:
    """One request as the upstream read it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


Behaviour = Callable[["_Handler", Recorded], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; without TCP_NODELAY the second waits for the
    # client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorded = Recorded(
            self.command, self.path, list(self.headers.items()), body, time.monotonic()
        )
        upstream = self.server.upstream
        with upstream.lock:
            upstream.requests.append(recorded)
        if upstream.barrier is not None:
            upstream.barrier.wait()
        upstream.behaviour(self, recorded)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read :attr:`Upstream.requests` instead."""

    def send(self, code: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(code)
        for name, value in headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    upstream: Upstream

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client leaving mid-answer is part of what these servers are for."""

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self.upstream.lock:
            self.upstream.accepts += 1
            self.upstream.sockets.append(sock)
        return sock, address


class Upstream:
    """An HTTP/1.1 keep-alive server on ``127.0.0.1:<port 0>``; a context manager."""

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        barrier: threading.Barrier | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.behaviour = behaviour or echo()
        self.tls = tls
        self.barrier = barrier
        self.requests: list[Recorded] = []
        self.accepts = 0
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self._http = LoopbackServer(_Handler, _Server)
        server = self._http.server
        assert isinstance(server, _Server)
        server.upstream = self
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Upstream:
        self._http.start()
        return self

    def drop_connections(self) -> None:
        """Close every accepted connection, as an upstream's idle keep-alive timeout would."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stop(self) -> None:
        self._http.stop()
        self.drop_connections()

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def echo(extra_headers: list[tuple[str, str]] | None = None) -> Behaviour:
    """200 with a JSON description of the request: method, target, headers, base64 body."""

    def behave(handler: _Handler, request: Recorded) -> None:
        body = json.dumps(
            {
                "method": request.method,
                "target": request.target,
                "headers": request.headers,
                "body": base64.b64encode(request.body).decode(),
            }
        ).encode()
        handler.send(200, [("Content-Type", "application/json"), *(extra_headers or [])], body)

    return behave


def json_answer(payload: Any, code: int = 200, delay: float = 0.0) -> Behaviour:
    """``code`` with ``payload`` as JSON, after ``delay`` seconds."""

    def behave(handler: _Handler, request: Recorded) -> None:
        if delay:
            time.sleep(delay)
        handler.send(code, [("Content-Type", "application/json")], json.dumps(payload).encode())

    return behave


def raw(code: int, headers: list[tuple[str, str]], body: bytes) -> Behaviour:
    """Exactly this status, these headers (repeats kept) and this body."""

    def behave(handler: _Handler, request: Recorded) -> None:
        handler.send(code, headers, body)

    return behave


def status(code: int, message: str = "upstream failed") -> Behaviour:
    return json_answer({"error": message}, code)


def slow(delay: float, then: Behaviour | None = None) -> Behaviour:
    """Wait ``delay`` seconds before answering (as ``then``, an echo by default)."""
    follow = then or echo()

    def behave(handler: _Handler, request: Recorded) -> None:
        time.sleep(delay)
        follow(handler, request)

    return behave


def drip(total_bytes: int, interval: float, *, in_headers: bool = False) -> Behaviour:
    """Send the answer one byte every ``interval`` seconds: in the body, or in the headers."""

    def behave(handler: _Handler, request: Recorded) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {total_bytes}\r\n"
        body = b"x" * total_bytes
        try:
            if in_headers:
                for char in f"{head}X-Padding: {'p' * total_bytes}\r\n\r\n".encode():
                    handler.wfile.write(bytes([char]))
                    handler.wfile.flush()
                    time.sleep(interval)
                handler.wfile.write(body)
            else:
                handler.wfile.write(f"{head}\r\n".encode())
                for char in body:
                    handler.wfile.write(bytes([char]))
                    handler.wfile.flush()
                    time.sleep(interval)
        except OSError:
            handler.close_connection = True

    return behave


def close_early() -> Behaviour:
    """Read the request, then close the connection without a word."""

    def behave(handler: _Handler, request: Recorded) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    return behave


def truncated(declared: int = 1000, sent: int = 10) -> Behaviour:
    """Declare ``declared`` body bytes, send ``sent``, then close."""

    def behave(handler: _Handler, request: Recorded) -> None:
        handler.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n".encode())
        handler.wfile.write(b"y" * sent)
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    return behave


def huge(size: int, *, chunked: bool = False) -> Behaviour:
    """A body of ``size`` bytes, with a Content-Length or chunked; stops if the client leaves."""

    def behave(handler: _Handler, request: Recorded) -> None:
        block = b"z" * 65536
        try:
            handler.send_response_only(200)
            handler.send_header("Content-Type", "application/octet-stream")
            if chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            else:
                handler.send_header("Content-Length", str(size))
            handler.end_headers()
            left = size
            while left > 0:
                piece = block[: min(left, len(block))]
                if chunked:
                    handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    handler.wfile.write(piece)
                left -= len(piece)
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True

    return behave


def binary(data: bytes, content_type: str = "application/octet-stream") -> Behaviour:
    return raw(200, [("Content-Type", content_type)], data)


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that Powertools' Logger reads."""

    function_name: str = "TicketsProxyFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:TicketsProxyFunction"
    )
    aws_request_id: str = "5f2b1c9e-0000-4000-8000-000000000001"


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for ``localhost`` and a client context that trusts only its certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "upstream.pem"
    key_file = directory / "upstream.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client

"""The little HTTP plumbing the demo services share: JSON in, JSON out, one route table each."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["JsonRequest", "Reply", "Router", "serve"]

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


@dataclass
class JsonRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; raises :class:`Reply` 400 when it is not."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise Reply(400, {"message": "body is not JSON"}) from exc

    @property
    def user_id(self) -> str | None:
        return self.headers.get("x-user-id") or None


class Reply(Exception):
    """An answer: return it from a route, or raise it from anywhere below one."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


Route = Callable[[JsonRequest], Reply]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Route]] = []

    def add(self, method: str, pattern: str, route: Route) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.routes.append((method, re.compile(f"^{regex}$"), route))

    def dispatch(self, request: JsonRequest) -> Reply:
        known_path = False
        for method, regex, route in self.routes:
            found = regex.match(request.path)
            if found is None:
                continue
            known_path = True
            if method == request.method:
                request.params = found.groupdict()
                try:
                    return route(request)
                except Reply as reply:
                    return reply
        return Reply(405 if known_path else 404, {"message": "no such route"})


def serve(router: Router, host: str, port: int, name: str) -> ThreadingHTTPServer:
    """A threading HTTP server for ``router`` (not started: call ``serve_forever``)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"demo-{name}"
        # Headers and body leave in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK hold the body back ~40 ms on every keep-alive request.
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._send(Reply(413, {"message": "body too large"}))
                self.close_connection = True
                return
            request = JsonRequest(
                method=self.command,
                path=url.path,
                query={k: v[-1] for k, v in parse_qs(url.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            try:
                reply = router.dispatch(request)
            except Exception:
                logger.exception("%s: %s %s failed", name, self.command, url.path)
                reply = Reply(500, {"message": "internal error"})
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if data:
                self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s: " + format, name, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server

"""Serve the board page on the frontend origin (127.0.0.1:5173 by default).

The files in ``static/`` are served as they are; ``/config.js`` is written from the settings, so
that the page knows where the HTTP API and the WebSocket API are without a build step:
``window.BOARD_CONFIG = {"apiUrl": ..., "wsUrl": ...}``.

Environment variables read (each overridden by the command line): ``BOARD_HOST``, ``BOARD_PORT``,
``BOARD_API_URL`` (default ``http://127.0.0.1:3000``), ``BOARD_WS_URL`` (default
``ws://127.0.0.1:3001/dev``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections.abc import Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["BoardServer", "main"]

STATIC = Path(__file__).resolve().parent / "static"

log = logging.getLogger(__name__)


class _Handler(SimpleHTTPRequestHandler):
    server: _PageHTTPServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(STATIC), **kwargs)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/config.js":
            body = self.server.config_js()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        # The page is a development tool: always the current files, never a stale cache.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("board page: " + format, *args)


class _PageHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    api_url = "http://127.0.0.1:3000"
    ws_url = "ws://127.0.0.1:3001/dev"

    def config_js(self) -> bytes:
        config = json.dumps({"apiUrl": self.api_url.rstrip("/"), "wsUrl": self.ws_url})
        return f"window.BOARD_CONFIG = {config};\n".encode()


class BoardServer:
    """The page's server, in a thread of the calling process. It binds at once (so its origin is
    known before the gateway starts) and serves after :meth:`start`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5173,
        *,
        api_url: str | None = None,
        ws_url: str | None = None,
    ) -> None:
        self.httpd = _PageHTTPServer((host, port), _Handler)
        self.configure(api_url=api_url, ws_url=ws_url)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="board-page", daemon=True
        )

    def configure(self, *, api_url: str | None = None, ws_url: str | None = None) -> None:
        """Point the page at the gateway's HTTP API and WebSocket API (stage included)."""
        if api_url:
            self.httpd.api_url = api_url
        if ws_url:
            self.httpd.ws_url = ws_url

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> BoardServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.board", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("BOARD_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("BOARD_PORT", "5173")))
    parser.add_argument(
        "--api-url", default=os.environ.get("BOARD_API_URL", "http://127.0.0.1:3000")
    )
    parser.add_argument(
        "--ws-url", default=os.environ.get("BOARD_WS_URL", "ws://127.0.0.1:3001/dev")
    )
    args = parser.parse_args(argv)
    server = BoardServer(args.host, args.port, api_url=args.api_url, ws_url=args.ws_url)
    print(
        f"board page on {server.url} (HTTP API {args.api_url}, WebSocket {args.ws_url})", flush=True
    )
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0

"""A small HTTP server on ``127.0.0.1``, port 0, served by a daemon thread, for test fakes.

The fakes (upstreams, a JWKS endpoint, the Parameters and Secrets extension, API Gateway's
``@connections``) differ in their request handler; starting, addressing and stopping the server
is here.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """A threading HTTP server on a free loopback port; ``start()`` serves, ``stop()`` joins."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
    ) -> None:
        self.server = server_class(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and wait for the serving thread."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

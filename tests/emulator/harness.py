"""Run an :class:`~localgw.app.Emulator` on its own event loop thread, for tests that use blocking
HTTP clients (``http.client``, ``urllib``) against its real socket."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from localgw.app import Emulator

APP = Path(__file__).resolve().parent / "app"
APP_TEMPLATE = APP / "template.yaml"


class RunningEmulator:
    def __init__(self, emulator: Emulator, loop: asyncio.AbstractEventLoop) -> None:
        self.emulator = emulator
        self.loop = loop

    @property
    def port(self) -> int:
        assert self.emulator.http is not None
        return self.emulator.http.port

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        """Run ``coroutine`` on the emulator's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 40,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: (status, headers with lower-case names, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            names: dict[str, str] = {}
            for name, value in response.getheaders():
                key = name.lower()
                names[key] = f"{names[key]}\n{value}" if key in names else value
            return response.status, names, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.request(method, path, **kwargs)
        return status, json.loads(body) if body else None


@contextmanager
def running(emulator: Emulator) -> Iterator[RunningEmulator]:
    """Start ``emulator`` on a loop in a thread; stop it and every worker on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="emulator", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(60)
        yield RunningEmulator(emulator, loop)
    finally:
        asyncio.run_coroutine_threadsafe(emulator.close(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def app_emulator(**kwargs: Any) -> Emulator:
    """The test application's emulator on a free port; keyword arguments go to ``from_template``."""
    kwargs.setdefault("port", 0)
    kwargs.setdefault("watch_interval", None)
    return Emulator.from_template(APP_TEMPLATE, **kwargs)

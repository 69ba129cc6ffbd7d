"""Run the WebSocket test application (``ws_app/``) on an event loop in a thread: its functions in
the emulator's real runtime, its WebSocket API in a :class:`RealtimeStack` on a free port, so that
tests can use blocking clients (``websockets.sync``, boto3) against the real sockets."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from localgw.app import loop_factory
from localgw.runtime import Runtime
from localgw.template import load_template
from localgw.websocket import WebSocketServer, WebSocketSettings
from localgw.websocket_stack import RealtimeSettings, RealtimeStack

WS_APP = Path(__file__).resolve().parent / "ws_app" / "template.yaml"


class LoopThread:
    """The emulator's event loop (uvloop when installed, as ``make run`` has it) in a daemon
    thread."""

    def __init__(self) -> None:
        self.loop = (loop_factory() or asyncio.new_event_loop)()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ws-test", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class RunningApp:
    def __init__(self, stack: RealtimeStack, runtime: Runtime, loop: LoopThread, log: Path) -> None:
        self.stack = stack
        self.runtime = runtime
        self.loop = loop
        self.log = log

    @property
    def server(self) -> WebSocketServer:
        return self.stack.servers[0]

    def url(self, query: str = "") -> str:
        return f"{self.server.url}/{'?' + query if query else ''}"

    def events(self) -> list[dict[str, Any]]:
        """Every event the route function has received so far, oldest first."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@contextmanager
def running_app(
    tmp: Path, *, settings: WebSocketSettings | None = None, **parameters: str
) -> Iterator[RunningApp]:
    """Start the test application; every worker and socket is closed on exit."""
    log = tmp / "events.jsonl"
    loop = LoopThread()
    model = load_template(WS_APP, overrides=parameters, environ={})
    stack = RealtimeStack(model, RealtimeSettings(websocket=settings or WebSocketSettings(port=0)))
    runtime = Runtime(
        model.functions,
        env_overrides={"WsRouteFunction": {"EVENTS_LOG": str(log)}},
        prewarm=1,
        concurrency=4,
        watch_interval=None,
    )
    try:
        loop.run(runtime.start())
        loop.run(stack.start(runtime))
        yield RunningApp(stack, runtime, loop, log)
    finally:
        loop.run(stack.close())
        loop.run(runtime.close())
        loop.stop()

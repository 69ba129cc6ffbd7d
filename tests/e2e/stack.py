"""The dev stack for the end-to-end tests, on free ports, and a JSON client for its HTTP API.

Each stack has a Kafka consumer group of its own for the broadcast mapping (starting at LATEST, it
sees only its own module's changes).
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from devstack.stack import DevStack, StackSettings
from localgw.app import loop_factory


class Stack:
    def __init__(self, dev: DevStack) -> None:
        self.dev = dev

    @property
    def board_url(self) -> str:
        assert self.dev.board is not None
        return self.dev.board.url

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        base: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """Send JSON to the HTTP API (or ``base``); answer status, lower-cased headers, JSON."""
        assert self.dev.emulator is not None
        data = None if body is None else json.dumps(body).encode()
        url = (base or self.dev.emulator.http_url) + path
        request = urllib.request.Request(url, data, method=method)
        request.add_header("content-type", "application/json")
        if token:
            request.add_header("authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw, status, answer_headers = response.read(), response.status, response.headers
        except urllib.error.HTTPError as error:
            with error:
                raw, status, answer_headers = error.read(), error.code, error.headers
        lowered = {name.lower(): value for name, value in answer_headers.items()}
        return status, lowered, json.loads(raw) if raw else None

    def login(self, username: str) -> str:
        status, _, body = self.call(
            "POST", "/auth/login", {"username": username, "password": f"{username}-password"}
        )
        assert status == 200, body
        assert body["tokenType"] == "Bearer"
        return str(body["accessToken"])

    def socket(self, token: str | None) -> ClientConnection:
        query = f"?token={token}" if token is not None else ""
        return connect(f"{self.dev.ws_url}{query}", open_timeout=30)


@contextmanager
def running_stack(
    redis_url: str, kafka_bootstrap: str, *, board: bool = False, wait_for_mapping: bool = True
) -> Iterator[Stack]:
    """Start the dev stack in a loop thread; with ``wait_for_mapping``, until its Kafka mapping
    has partitions."""
    settings = StackSettings(
        http_port=0,
        ws_port=0,
        board_port=0 if board else None,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        parameter_overrides={"KafkaConsumerGroupId": f"e2e-{uuid.uuid4().hex[:8]}"},
        watch_interval=None,
        output=lambda name, line: None,
    )
    dev = DevStack(settings)
    loop = (loop_factory() or asyncio.new_event_loop)()  # what make run uses
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(dev.start(), loop).result(120)
        if wait_for_mapping:
            assert dev.realtime is not None
            (mapping,) = dev.realtime.mappings
            assert mapping.wait_assigned(60), "the broadcast mapping never joined its group"
        yield Stack(dev)
    finally:
        asyncio.run_coroutine_threadsafe(dev.close(), loop).result(120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        # kafka-python 3.0 can leave a socket unclosed when its consumer stops: collect it here,
        # while the calling test's warning filters still apply.
        time.sleep(0.2)
        gc.collect()

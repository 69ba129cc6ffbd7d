"""The dev stack for the real-time end-to-end tests, on free ports, with a Kafka consumer group of
its own (starting at LATEST, it sees only its own module's changes)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from devstack.stack import DevStack, StackSettings


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
        base: str | None = None,
    ) -> Any:
        assert self.dev.emulator is not None
        data = None if body is None else json.dumps(body).encode()
        url = (base or self.dev.emulator.http_url) + path
        request = urllib.request.Request(url, data, method=method)
        request.add_header("content-type", "application/json")
        if token:
            request.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def login(self, username: str) -> str:
        status, body = self.call(
            "POST", "/auth/login", {"username": username, "password": f"{username}-password"}
        )
        assert status == 200, body
        return str(body["accessToken"])

    def socket(self, token: str | None) -> ClientConnection:
        query = f"?token={token}" if token is not None else ""
        return connect(f"{self.dev.ws_url}{query}", open_timeout=30)


@contextmanager
def running_stack(redis_url: str, kafka_bootstrap: str, *, board: bool = False) -> Iterator[Stack]:
    """Start the dev stack in a loop thread and wait until its Kafka mapping has partitions."""
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
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(dev.start(), loop).result(120)
        assert dev.realtime is not None
        (mapping,) = dev.realtime.mappings
        assert mapping.wait_assigned(60), "the broadcast mapping never joined its group"
        yield Stack(dev)
    finally:
        asyncio.run_coroutine_threadsafe(dev.close(), loop).result(120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

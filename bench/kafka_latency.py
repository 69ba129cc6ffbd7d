"""Time from a Kafka produce to its receipt on every socket of a 1,000-member room.

The whole real-time path runs as ``make run`` runs it, in a child process: the dev stack (Redis,
a Tansu broker, the demo services, the emulator with the project's template and real handlers),
its Kafka event source mapping invoking ``ws_broadcast``, which posts to ``@connections``. This
process logs in as alice, opens 1,000 WebSocket connections with her token (each through the real
authorizer and ``$connect``), subscribes each to project p-1 (``ws_connect``), then produces
``ticket.updated`` records one at a time, every ``GAP`` seconds, and notes when the last of the
1,000 sockets has received each one.

Prints p50, p90, p99 and max of that latency (goal: p99 under 250 ms), with the connect and
subscribe times. The sockets are read by this one Python process, so the figure includes the time
it takes to parse 1,000 frames; it is an upper bound of what a browser sees.

Run: ``.venv/bin/python -m bench.kafka_latency`` (``BENCH_ROOM_SIZE``, ``BENCH_RECORDS`` change
the size).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench import ROOT

ROOM_SIZE = int(os.environ.get("BENCH_ROOM_SIZE", "1000"))
RECORDS = int(os.environ.get("BENCH_RECORDS", "40"))
WARMUP = 3
GAP = 0.3
GOAL_P99_MS = 250.0


async def _serve() -> None:
    """Child: the dev stack on free ports; print its addresses; run until stdin closes."""
    from devstack.services import free_port
    from devstack.stack import DevStack, StackSettings

    settings = StackSettings(
        http_port=0,
        ws_port=free_port(),
        board_port=None,
        watch_interval=None,
        concurrency=16,
        output=lambda name, line: None,
    )
    stack = DevStack(settings)
    await stack.start()
    try:
        assert stack.realtime is not None
        assert stack.emulator is not None
        (mapping,) = stack.realtime.mappings
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, mapping.wait_assigned, 60)
        print(
            json.dumps(
                {
                    "http": stack.emulator.http_url,
                    "ws": stack.ws_url,
                    "kafka": stack.kafka_bootstrap,
                }
            ),
            flush=True,
        )
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        await stack.close()


def _login(http_url: str) -> str:
    body = json.dumps({"username": "alice", "password": "alice-password"}).encode()
    request = urllib.request.Request(f"{http_url}/auth/login", body, method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["accessToken"])


class Room:
    """The sockets, and when each record reached the last of them."""

    def __init__(self) -> None:
        self.sockets: list[Any] = []
        self.counts: dict[str, int] = {}
        self.sent: dict[str, float] = {}
        self.complete: dict[str, float] = {}
        self.first: dict[str, float] = {}
        self._readers: list[asyncio.Task[None]] = []
        self.arrived = asyncio.Event()

    async def open(self, ws_url: str, token: str) -> None:
        from websockets.asyncio.client import connect

        async def one() -> Any:
            ws = await connect(f"{ws_url}?token={token}", compression=None, open_timeout=120)
            await ws.send(json.dumps({"action": "subscribe", "projectId": "p-1"}))
            answer = json.loads(await ws.recv())
            assert answer.get("type") == "subscribed", answer
            return ws

        for start in range(0, ROOM_SIZE, 50):
            size = min(50, ROOM_SIZE - start)
            self.sockets.extend(await asyncio.gather(*(one() for _ in range(size))))
        self._readers = [asyncio.create_task(self._read(ws)) for ws in self.sockets]

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") != "ticket.updated":
                continue
            key = message["ticket"]["id"]
            self.first.setdefault(key, time.perf_counter())
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.counts[key] == ROOM_SIZE:
                self.complete[key] = time.perf_counter()
                self.arrived.set()

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def _measure(addresses: dict[str, str]) -> tuple[list[float], list[float], float]:
    from kafka import KafkaProducer

    token = _login(addresses["http"])
    room = Room()
    started = time.perf_counter()
    await room.open(addresses["ws"], token)
    setup = time.perf_counter() - started
    producer = KafkaProducer(bootstrap_servers=addresses["kafka"], linger_ms=0, acks=1)
    latencies: list[float] = []
    firsts: list[float] = []
    try:
        for index in range(WARMUP + RECORDS):
            key = f"bench-{index}"
            value = {
                "type": "ticket.updated",
                "projectId": "p-1",
                "ticket": {"id": key, "title": "latency probe", "status": "todo"},
                "at": "2026-01-01T00:00:00Z",
            }
            room.arrived.clear()
            room.sent[key] = time.perf_counter()
            producer.send("ticket.updated", key=b"p-1", value=json.dumps(value).encode())
            producer.flush()
            while key not in room.complete:
                await asyncio.wait_for(room.arrived.wait(), 30)
                room.arrived.clear()
            if index >= WARMUP:
                latencies.append((room.complete[key] - room.sent[key]) * 1000)
                firsts.append((room.first[key] - room.sent[key]) * 1000)
            await asyncio.sleep(GAP)
    finally:
        producer.close()
        await room.close()
    return latencies, firsts, setup


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.kafka_latency", "--serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        addresses = json.loads(child.stdout.readline())
        latencies, firsts, setup = asyncio.run(_measure(addresses))
    finally:
        child.stdin.close()
        child.wait(60)
    p99 = _percentile(latencies, 0.99)
    print(f"room of {ROOM_SIZE} sockets ready in {setup:.1f} s (authorizer, $connect, subscribe)")
    print(
        f"produce -> every socket, {len(latencies)} records: "
        f"p50 {statistics.median(latencies):.0f} ms, p90 {_percentile(latencies, 0.9):.0f} ms, "
        f"p99 {p99:.0f} ms, max {max(latencies):.0f} ms"
    )
    print(
        f"produce -> first socket (mapping, function start, first post): "
        f"p50 {statistics.median(firsts):.0f} ms, p99 {_percentile(firsts, 0.99):.0f} ms"
    )
    verdict = "within" if p99 < GOAL_P99_MS else "over"
    print(f"p99 {p99:.0f} ms is {verdict} the goal of {GOAL_P99_MS:.0f} ms")


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        asyncio.run(_serve())
    else:
        main()

"""WebSocket fan-out through the emulator against ``websockets.broadcast``, in the same run.

1,000 client connections (``websockets`` asyncio clients, compression off) in this process each
receive ``ROUNDS`` messages of 1 KB:

- baseline: a ``websockets`` server in a child process sends each message to every connection
  with ``websockets.broadcast`` (its fastest path: no per-message await, no backpressure);
- emulator: the emulator's :class:`~localgw.websocket.WebSocketServer` in a child process, and
  the messages arrive as ``POST /@connections/{id}`` requests, as ``ws_broadcast`` sends them,
  from a sender in a third process (8 keep-alive connections, requests pipelined).

Both are timed from the trigger until every client has counted every message; the figure is
deliveries per second, and the ratio is emulator / baseline (goal: at least 0.7). Both servers
are up at once and their trials alternate (``TRIALS`` each, after a warm-up), so that both meet
the same machine load; the medians count.

Run: ``.venv/bin/python -m bench.ws_fanout`` (``BENCH_FANOUT_CONNECTIONS``,
``BENCH_FANOUT_ROUNDS`` change the size).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench import ROOT

CONNECTIONS = int(os.environ.get("BENCH_FANOUT_CONNECTIONS", "1000"))
ROUNDS = int(os.environ.get("BENCH_FANOUT_ROUNDS", "30"))
TRIALS = 5
SENDER_CONNECTIONS = 8
PAYLOAD = ("x" * 1000 + "{:>24}").format("fan-out")
GOAL = 0.7


# --- child processes ------------------------------------------------------------------------


async def _serve_baseline() -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        if ws.request.path != "/control":
            clients.add(ws)
            await ws.wait_closed()
            clients.discard(ws)
            return
        async for message in ws:
            for _ in range(int(message)):
                broadcast(clients, PAYLOAD)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=2**20) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


async def _serve_emulator() -> None:
    from localgw.websocket import WebSocketServer, WebSocketSettings
    from localgw.websocket_api import WebSocketApi

    async def nobody(function: str, event: dict[str, Any]) -> Any:
        raise AssertionError("no route has a function")

    api = WebSocketApi("Bench", "benchapi", "$request.body.action", "bench")
    server = WebSocketServer(api, nobody, WebSocketSettings(port=0, idle_timeout=3600))
    await server.start()
    print(server.port, flush=True)
    await asyncio.Future()


async def _send(port: int) -> None:
    """Read connection ids and a round count on stdin; on ``go``, POST every message."""
    ids: list[str] = json.loads(sys.stdin.readline())
    rounds = int(sys.stdin.readline())
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(SENDER_CONNECTIONS)]
    body = PAYLOAD.encode()
    requests = [
        f"POST /bench/@connections/{cid} HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for cid in ids
    ]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def one_stream(index: int) -> int:
        reader, writer = streams[index]
        mine = requests[index::SENDER_CONNECTIONS]
        # Every round's requests are pipelined at once; the answers are read after.
        writer.write(b"".join(mine) * rounds)
        answered = 0
        for _ in range(rounds * len(mine)):
            head = await reader.readuntil(b"\r\n\r\n")
            answered += head.startswith(b"HTTP/1.1 200")
        return answered

    answered = sum(await asyncio.gather(*(one_stream(i) for i in range(SENDER_CONNECTIONS))))
    print(answered, flush=True)


# --- the clients ----------------------------------------------------------------------------


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.ws_fanout", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


class Clients:
    def __init__(self) -> None:
        self.connections: list[Any] = []
        self.received = 0
        self.target = 0
        self.done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, url: str) -> None:
        from websockets.asyncio.client import connect

        async def one() -> Any:
            return await connect(url, compression=None, max_size=2**20, open_timeout=60)

        for start in range(0, CONNECTIONS, 100):
            batch = await asyncio.gather(
                *(one() for _ in range(start, min(start + 100, CONNECTIONS)))
            )
            self.connections.extend(batch)

    def start_counting(self) -> None:
        self._tasks = [asyncio.create_task(self._count(ws)) for ws in self.connections]

    async def _count(self, ws: Any) -> None:
        async for _ in ws:
            self.received += 1
            if self.received == self.target:
                self.done.set()

    def expect(self, messages: int) -> None:
        self.received = 0
        self.target = messages
        self.done.clear()

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.connections), return_exceptions=True)


async def _trial_baseline(clients: Clients, control: Any, rounds: int) -> float:
    clients.expect(rounds * CONNECTIONS)
    started = time.perf_counter()
    await control.send(str(rounds))
    await asyncio.wait_for(clients.done.wait(), 120)
    return time.perf_counter() - started


async def _ids(clients: Clients) -> list[str]:
    """Each client's connection id: a message to a route-less API answers Forbidden with it."""

    async def ask(ws: Any) -> str:
        await ws.send("who am i")
        return str(json.loads(await ws.recv())["connectionId"])

    # Asked before the counting tasks start: they own recv() afterwards.
    return [await ask(ws) for ws in clients.connections]


async def _trial_emulator(clients: Clients, port: int, ids: list[str], rounds: int) -> float:
    sender = _child("--send", str(port))
    assert sender.stdin is not None
    assert sender.stdout is not None
    sender.stdin.write(json.dumps(ids) + "\n" + f"{rounds}\n")
    sender.stdin.flush()
    loop = asyncio.get_running_loop()
    assert (await loop.run_in_executor(None, sender.stdout.readline)).strip() == "ready"
    clients.expect(rounds * CONNECTIONS)
    started = time.perf_counter()
    sender.stdin.write("go\n")
    sender.stdin.flush()
    await asyncio.wait_for(clients.done.wait(), 120)
    elapsed = time.perf_counter() - started
    answered = int(await loop.run_in_executor(None, sender.stdout.readline))
    sender.wait()
    assert answered == rounds * CONNECTIONS, f"{answered} of {rounds * CONNECTIONS} answered 200"
    return elapsed


async def measure() -> tuple[list[float], list[float]]:
    """Both servers up at once, their trials interleaved, so that both see the same machine."""
    from websockets.asyncio.client import connect

    baseline_server = _child("--serve", "baseline")
    emulator_server = _child("--serve", "emulator")
    assert baseline_server.stdout is not None
    assert emulator_server.stdout is not None
    baseline_port = int(baseline_server.stdout.readline())
    emulator_port = int(emulator_server.stdout.readline())
    baseline, emulator = Clients(), Clients()
    try:
        await baseline.open(f"ws://127.0.0.1:{baseline_port}")
        baseline.start_counting()
        control = await connect(f"ws://127.0.0.1:{baseline_port}/control", compression=None)
        await emulator.open(f"ws://127.0.0.1:{emulator_port}/bench")
        ids = await _ids(emulator)
        emulator.start_counting()

        await _trial_baseline(baseline, control, 1)
        await _trial_emulator(emulator, emulator_port, ids, 1)
        baseline_rates, emulator_rates = [], []
        for _ in range(TRIALS):
            elapsed = await _trial_baseline(baseline, control, ROUNDS)
            baseline_rates.append(ROUNDS * CONNECTIONS / elapsed)
            elapsed = await _trial_emulator(emulator, emulator_port, ids, ROUNDS)
            emulator_rates.append(ROUNDS * CONNECTIONS / elapsed)
        await control.close()
        return baseline_rates, emulator_rates
    finally:
        await baseline.close()
        await emulator.close()
        for server in (baseline_server, emulator_server):
            server.terminate()
            server.wait()


def main() -> None:
    print(f"{CONNECTIONS} connections, {ROUNDS} messages of {len(PAYLOAD)} bytes each per trial")
    baseline_rates, emulator_rates = asyncio.run(measure())
    baseline = statistics.median(baseline_rates)
    emulator = statistics.median(emulator_rates)

    def trials(rates: list[float]) -> str:
        return ", ".join(f"{rate:.0f}" for rate in rates)

    print(
        f"websockets.broadcast   {baseline:8.0f} deliveries/s, median of {trials(baseline_rates)}"
    )
    print(
        f"emulator @connections  {emulator:8.0f} deliveries/s, median of {trials(emulator_rates)}"
    )
    pairs = [e / b for b, e in zip(baseline_rates, emulator_rates, strict=True)]
    print(f"trial-by-trial ratios  {', '.join(f'{r:.2f}' for r in pairs)}")
    ratio = emulator / baseline
    verdict = "within" if ratio >= GOAL else "short of"
    print(f"ratio emulator/broadcast {ratio:.2f}x ({verdict} the goal of at least {GOAL}x)")


if __name__ == "__main__":
    if sys.argv[1:3] == ["--serve", "baseline"]:
        asyncio.run(_serve_baseline())
    elif sys.argv[1:3] == ["--serve", "emulator"]:
        asyncio.run(_serve_emulator())
    elif sys.argv[1:2] == ["--send"]:
        asyncio.run(_send(int(sys.argv[2])))
    else:
        main()

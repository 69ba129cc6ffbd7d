"""One ticket event fanned out to a room of 1,000 connections.

Measures, in the same run and against the same endpoint (a minimal threaded HTTP server on
loopback, in its own process, answering 200 at once):

- baseline: a plain loop of boto3 ``post_to_connection`` calls, one connection after another;
- handler: ``ws_broadcast.handler`` given a one-record Kafka event, reading the room from a real
  Redis and sending on its bounded pool (``BROADCAST_CONCURRENCY``, default 32).

Prints the CPU time per connection of each (this process only; the server's CPU is its own),
their ratio (goal: at most 1.2), and both wall times. Each side runs several rounds after a
warm-up; the median round counts. Then the same broadcast against an endpoint that answers after
10 ms, a network round trip, where the bounded pool shows in the wall time.

Run: ``.venv/bin/python -m bench.broadcast``
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import ROOT

ROOM_SIZE = 1000
ROUNDS = 5
GOAL = 1.2
LATENCY = 0.01
PROJECT = "p-bench"


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.delay:
            time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve(port: int, delay: float) -> None:
    """The endpoint: every POST answers 200 with no body, like a successful post_to_connection,
    after ``delay`` seconds (0 for the CPU comparison; a network round trip for the wall time)."""
    _Ok.delay = delay
    server = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
    server.daemon_threads = True
    server.serve_forever()


def _event() -> dict[str, Any]:
    value = {
        "type": "ticket.updated",
        "projectId": PROJECT,
        "ticket": {"id": "t-1", "title": "Fix login redirect", "status": "review"},
        "at": "2026-12-03T16:40:30Z",
    }
    record = {
        "topic": "ticket.updated",
        "partition": 0,
        "offset": 1,
        "timestamp": 1_796_316_030_000,
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(PROJECT.encode()).decode(),
        "value": base64.b64encode(json.dumps(value).encode()).decode(),
        "headers": [],
    }
    return {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": "127.0.0.1:9092",
        "records": {"ticket.updated-0": [record]},
    }


def _measure(run: Callable[[], None]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    from devstack.services import free_port, start_redis, wait_for_port

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    ports = {"instant": free_port(), "latency": free_port()}
    delays = {"instant": "0", "latency": str(LATENCY)}
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.broadcast", "serve", str(port), delays[name]], cwd=ROOT
        )
        for name, port in ports.items()
    ]
    try:
        for port in ports.values():
            wait_for_port("127.0.0.1", port)
        with start_redis() as redis_service:
            endpoints = {name: f"http://127.0.0.1:{port}/dev" for name, port in ports.items()}
            _run(endpoints, f"redis://{redis_service.address}/0")
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)


def _run(endpoints: dict[str, str], redis_url: str) -> None:
    import boto3
    import redis

    os.environ["REDIS_URL"] = redis_url
    endpoint = endpoints["instant"]
    os.environ["WS_MANAGEMENT_ENDPOINT"] = endpoint
    import ws_broadcast

    from gateway.rooms.records import decode_record, event_records, ticket_update

    connections = [f"bench-{index:04d}=" for index in range(ROOM_SIZE)]
    client = redis.Redis.from_url(redis_url)
    client.sadd(f"ws:room:{{{PROJECT}}}", *connections)
    client.close()

    event = _event()
    data = ticket_update(decode_record(*next(event_records(event)))).data
    plain = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name="us-east-1")

    def baseline() -> None:
        for connection_id in connections:
            plain.post_to_connection(ConnectionId=connection_id, Data=data)

    def handler() -> None:
        counts = ws_broadcast.handler(event, None)
        assert counts["delivered"] == ROOM_SIZE, counts

    baseline()
    handler()
    rounds: dict[str, list[tuple[float, float]]] = {"baseline": [], "handler": []}
    for _ in range(ROUNDS):
        rounds["baseline"].append(_measure(baseline))
        rounds["handler"].append(_measure(handler))

    concurrency = ws_broadcast.get_broadcaster().concurrency
    cpu = {name: statistics.median(c for c, _ in runs) for name, runs in rounds.items()}
    wall = {name: statistics.median(w for _, w in runs) for name, runs in rounds.items()}
    ratio = cpu["handler"] / cpu["baseline"]
    print(f"room of {ROOM_SIZE} connections, median of {ROUNDS} rounds, endpoint {endpoint}")
    print(
        f"baseline (plain boto3 loop)     CPU {cpu['baseline'] / ROOM_SIZE * 1e6:7.1f} us/conn"
        f"   wall {wall['baseline'] * 1e3:7.1f} ms"
    )
    print(
        f"handler  (pool of {concurrency:>3})         CPU {cpu['handler'] / ROOM_SIZE * 1e6:7.1f}"
        f" us/conn   wall {wall['handler'] * 1e3:7.1f} ms"
    )
    print(
        f"CPU per connection ratio handler/baseline: {ratio:.2f} (goal <= {GOAL}: "
        f"{'met' if ratio <= GOAL else 'NOT met'})"
    )
    print(
        f"wall time ratio handler/baseline: {wall['handler'] / wall['baseline']:.2f} "
        "(instant endpoint sharing the 2 cores: mostly CPU-bound)"
    )

    # The same room against an endpoint that answers after a network round trip: what the pool
    # is for. The plain loop runs once here, it takes ROOM_SIZE round trips.
    os.environ["WS_MANAGEMENT_ENDPOINT"] = endpoints["latency"]
    slow = boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoints["latency"], region_name="us-east-1"
    )

    def slow_baseline() -> None:
        for connection_id in connections:
            slow.post_to_connection(ConnectionId=connection_id, Data=data)

    handler()
    _, loop_wall = _measure(slow_baseline)
    pool_wall = statistics.median(_measure(handler)[1] for _ in range(3))
    print(
        f"endpoint answering after {LATENCY * 1e3:.0f} ms: plain loop wall {loop_wall:6.2f} s, "
        f"handler wall {pool_wall:6.2f} s (pool of {concurrency}), "
        f"speed-up {loop_wall / pool_wall:.1f}x"
    )
    ws_broadcast.reset_broadcaster()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()

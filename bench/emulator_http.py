"""The emulator's HTTP API against a direct Python HTTP server, and the whole gateway hop against
its upstream, measured in the same run with keep-alive clients on loopback.

1. A trivial function (returns a fixed 200) behind ``python -m localgw``, against a trivial
   ``http.server`` answering the same body. Goal: p50 under 1 ms and at most 2x direct.
2. ``GET /tickets?projectId=p-1`` through ``python -m devstack`` (cached authorizer, rate limiter
   on Redis, proxy to the demo Ticket service), against the same request sent straight to the demo
   Ticket service. Goal: p50 at most 1.5x direct.

Each server runs in a process of its own, so that the client does not share its interpreter lock.
Run: ``.venv/bin/python -m bench.emulator_http`` (``BENCH_REQUESTS`` sets the sample size).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
WARMUP = 300
ROUND = 250

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  Trivial:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: trivial.handler
      Runtime: python3.12
      Events:
        Get:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Path: /trivial
            Method: GET
"""

HANDLER = """\
def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}
"""

DIRECT_SERVER = """\
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

try:
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
except KeyboardInterrupt:
    pass
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        name: ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000
        for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
    }


def measure(targets: dict[str, tuple[int, str, dict[str, str]]]) -> dict[str, dict[str, float]]:
    """Latency of ``REQUESTS`` sequential GETs per target, each on one keep-alive connection.

    Targets take turns in rounds of ``ROUND`` requests, so that a burst of load from elsewhere on
    the machine weighs on all of them alike rather than on whichever ran at that moment.
    """
    connections = {
        name: http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for name, (port, _, _) in targets.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    try:
        for name, (_, path, headers) in targets.items():
            for _ in range(WARMUP):
                _get(connections[name], path, headers)
        for _ in range(max(1, REQUESTS // ROUND)):
            for name, (_, path, headers) in targets.items():
                samples[name].extend(_get(connections[name], path, headers) for _ in range(ROUND))
    finally:
        for connection in connections.values():
            connection.close()
    return {name: percentiles(values) for name, values in samples.items()}


def _get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status}")
    return elapsed


def report(name: str, figures: dict[str, float], baseline: dict[str, float] | None) -> None:
    text = "  ".join(f"{key} {value:.3f} ms" for key, value in figures.items())
    if baseline is not None:
        text += f"  (p50 ratio {figures['p50'] / baseline['p50']:.2f}x)"
    print(f"  {name:<34} {text}", flush=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def trivial_function() -> tuple[dict[str, float], dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-localgw-") as folder:
        base = Path(folder)
        (base / "fn").mkdir()
        (base / "fn" / "trivial.py").write_text(HANDLER)
        (base / "template.yaml").write_text(TEMPLATE)
        direct_port, gateway_port = free_port(), free_port()
        direct = subprocess.Popen([sys.executable, "-c", DIRECT_SERVER, str(direct_port)])
        gateway = subprocess.Popen(
            [
                sys.executable, "-m", "localgw", "--template", str(base / "template.yaml"),
                "--port", str(gateway_port), "--log-level", "WARNING", "--no-reload",
            ],
            cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port("127.0.0.1", direct_port, 20)
            wait_for_port("127.0.0.1", gateway_port, 30)
            figures = measure(
                {
                    "direct": (direct_port, "/trivial", {}),
                    "emulator": (gateway_port, "/trivial", {}),
                }
            )
        finally:
            _stop(gateway)
            _stop(direct)
    return figures["direct"], figures["emulator"]


def _read_summary(process: subprocess.Popen[str], deadline: float) -> dict[str, str]:
    """The URLs ``python -m devstack`` prints, read from its output until the route table."""
    urls: dict[str, str] = {}
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("devstack exited before it was ready")
        found = re.match(r"\s+(HTTP API|demo Tickets)\s+(http://\S+)", line)
        if found:
            urls[found.group(1)] = found.group(2)
        if line.startswith("METHOD"):
            return urls
    raise RuntimeError("devstack did not print its summary in time")


def gateway_hop() -> tuple[dict[str, float], dict[str, float]]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "devstack", "--port", str(port), "--ws-port", "0",
            "--board-port", "-1", "--log-level", "WARNING",
            # The limiter still runs on every request; it just never refuses one here.
            "--parameter-overrides", "TicketsRateLimit=1000000/60 LogLevel=WARNING",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        urls = _read_summary(process, time.monotonic() + 90)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        login = json.dumps({"username": "alice", "password": "alice-password"})
        connection.request(
            "POST", "/auth/login", body=login, headers={"content-type": "application/json"}
        )
        token = json.loads(connection.getresponse().read())["accessToken"]
        connection.close()
        tickets_port = int(urls["demo Tickets"].rsplit(":", 1)[1])
        path = "/tickets?projectId=p-1"
        figures = measure(
            {
                "direct": (tickets_port, path, {"x-user-id": "alice"}),
                "gateway": (port, path, {"authorization": f"Bearer {token}"}),
            }
        )
    finally:
        _stop(process)
    return figures["direct"], figures["gateway"]


def _check(name: str, ok: bool) -> None:
    print(f"  goal {name}: {'met' if ok else 'NOT met'}", flush=True)


def main() -> None:
    print(f"emulator HTTP API, {REQUESTS} keep-alive requests each, after {WARMUP} warm-up")
    direct, emulated = trivial_function()
    report("direct http.server (baseline)", direct, None)
    report("emulator -> trivial function", emulated, direct)
    _check("p50 < 1 ms", emulated["p50"] < 1.0)
    _check("p50 <= 2x direct", emulated["p50"] <= 2 * direct["p50"])

    upstream, hop = gateway_hop()
    report("demo Ticket service (baseline)", upstream, None)
    report("gateway hop (auth+limit+proxy)", hop, upstream)
    _check("gateway p50 <= 1.5x upstream", hop["p50"] <= 1.5 * upstream["p50"])


if __name__ == "__main__":
    main()

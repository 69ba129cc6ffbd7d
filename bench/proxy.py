"""(a) A request through the tickets proxy against the same request sent straight upstream.

Both sides run in this process against one upstream in a process of its own (a keep-alive
HTTP/1.1 server on loopback answering a small JSON document at once), so the difference is the
gateway's own work per request: reading the event, normalising the path, one rate-limit round
trip to a real ``redis-server``, the breaker (a local decision while healthy), forwarding on a
pooled connection, shaping the answer, one JSON log line and the EMF metrics.

- baseline: ``http.client`` on one keep-alive connection, the same path, query and headers;
- proxied: ``proxy.handler(event, context)``, as Lambda would call it once the instance is warm.

The two alternate in rounds, so that drift on this noisy machine touches both alike. Prints p50,
p99 and requests per second of each and the ratios (goals: p50 at most 1.5x, p99 at most 3x,
throughput at least 50% of direct). API Gateway's and Lambda's own hops are not in either figure.

Run twice: against an upstream answering at once (the worst case for the ratios: the gateway's
work is compared with a bare loopback round trip) and one taking 2 ms, as a service that reads a
database does.

Then the cold-start cost of Powertools' Tracer: the median time to import the proxy module in a
fresh interpreter, with and without ``Tracer`` (which loads the X-Ray SDK).

Run: ``.venv/bin/python -m bench.proxy``
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import ROOT

ROUNDS = 4
PER_ROUND = 500
IMPORT_RUNS = 7
BODY = json.dumps([{"id": f"t-{i}", "title": "A ticket", "status": "open"} for i in range(3)])


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; without TCP_NODELAY the second waits for the
    # client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    delay = 0.0

    def _serve(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.delay:
            time.sleep(self.delay)
        body = BODY.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _serve(port: int, delay: float) -> None:
    _Answer.delay = delay
    server = ThreadingHTTPServer(("127.0.0.1", port), _Answer)
    server.daemon_threads = True
    server.serve_forever()


@contextlib.contextmanager
def upstream(delay: float = 0.0) -> Iterator[str]:
    """An upstream in its own process on a free loopback port; yields its URL."""
    from devstack.services import free_port, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.proxy", "--serve", str(port), str(delay)], cwd=ROOT
    )
    try:
        wait_for_port("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


def timed(call: Callable[[], object], count: int) -> list[float]:
    """Wall time of each of ``count`` calls, in seconds."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def percentile(times: list[float], share: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def direct_call(url: str, path: str, headers: dict[str, str]) -> Callable[[], bytes]:
    """One keep-alive connection, one GET per call: a client talking to the upstream itself."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))

    def call() -> bytes:
        connection.request("GET", path, headers=headers)
        return connection.getresponse().read()

    return call


@contextlib.contextmanager
def quiet(module: Any) -> Iterator[None]:
    """Send a handler's log lines and EMF metrics to /dev/null: written, but not on screen."""
    with open(os.devnull, "w") as sink:
        handler = module.logger.registered_handler
        previous = handler.stream
        handler.stream = sink
        try:
            with contextlib.redirect_stdout(sink):
                yield
        finally:
            handler.stream = previous


def report(name: str, times: list[float]) -> tuple[float, float, float]:
    p50, p99 = percentile(times, 0.50), percentile(times, 0.99)
    rate = len(times) / sum(times)
    print(f"{name:<10} p50 {p50 * 1e6:8.0f} us   p99 {p99 * 1e6:8.0f} us   {rate:8.0f} req/s")
    return p50, p99, rate


def bench_request(delay: float) -> None:
    """Direct and proxied calls to an upstream that takes ``delay`` seconds to answer."""
    from devstack.services import start_redis

    with start_redis() as redis_service, upstream(delay) as url:
        os.environ.update(
            {
                "ROUTE_GROUP": "tickets",
                "UPSTREAM_URL": url,
                "REDIS_URL": f"redis://{redis_service.address}/0",
                "RATE_LIMIT": "1000000/60",
                "POWERTOOLS_SERVICE_NAME": "tickets-proxy",
            }
        )
        import proxy

        from gateway.ratelimit import limit_key
        from gateway.redis_client import reset_redis
        from tests.conftest import load_event
        from tests.support.upstreams import LambdaContext

        proxy.reset()
        reset_redis()
        event = load_event("http-tickets-get")
        context = LambdaContext()
        headers = {name: value for name, value in event["headers"].items() if name != "host"}
        headers.update({"x-user-id": "u-42", "x-user-roles": "member", "cookie": "a=1; b=2"})
        direct = direct_call(url, f"{event['rawPath']}?{event['rawQueryString']}", headers)

        def proxied() -> object:
            result = proxy.handler(event, context)
            assert result["statusCode"] == 200, result
            return result

        rounds, per_round = (ROUNDS, PER_ROUND) if delay == 0 else (2, 150)
        direct_times: list[float] = []
        proxied_times: list[float] = []
        cpu = {"direct": 0.0, "proxied": 0.0}
        with quiet(proxy):
            timed(direct, 100)
            timed(proxied, 100)
            for _ in range(rounds):
                for name, call in (("direct", direct), ("proxied", proxied)):
                    started = time.process_time()
                    measured = timed(call, per_round)
                    cpu[name] += time.process_time() - started
                    (direct_times if name == "direct" else proxied_times).extend(measured)
            warm = proxy._instance()
            key = limit_key("tickets", "user:u-42")
            limiter_times = timed(lambda: warm.limiter.hit(key, warm.policy), per_round)

    print(f"upstream answering after {delay * 1000:g} ms:")
    d50, d99, drate = report("direct", direct_times)
    p50, p99, prate = report("proxied", proxied_times)
    print(
        f"ratio      p50 {p50 / d50:.2f}x (goal <= 1.5)   p99 {p99 / d99:.2f}x (goal <= 3)   "
        f"throughput {prate / drate:.0%} of direct (goal >= 50%)"
    )
    print(
        f"added      p50 {(p50 - d50) * 1e6:.0f} us per request; the limiter's Redis round "
        f"trip alone is p50 {percentile(limiter_times, 0.5) * 1e6:.0f} us"
    )
    count = rounds * per_round
    print(
        f"CPU of this process per request: direct {cpu['direct'] / count * 1e6:.0f} us, "
        f"proxied {cpu['proxied'] / count * 1e6:.0f} us"
    )


def _import_time(extra: str) -> float:
    code = (
        "import time; started = time.perf_counter(); import proxy; "
        f"{extra}; print(time.perf_counter() - started)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "layers" / "common"), str(ROOT / "functions" / "proxy")]
        ),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    output = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path("/"),
    )
    return float(output.stdout.strip())


def bench_tracer_import() -> None:
    tracer = "from aws_lambda_powertools import Tracer; Tracer(service='tickets-proxy')"
    without = statistics.median(_import_time("pass") for _ in range(IMPORT_RUNS))
    with_tracer = statistics.median(_import_time(tracer) for _ in range(IMPORT_RUNS))
    print(
        f"cold import of proxy: {without * 1000:.0f} ms without Tracer, "
        f"{with_tracer * 1000:.0f} ms with it (+{(with_tracer - without) * 1000:.0f} ms, "
        f"{with_tracer / without:.2f}x), median of {IMPORT_RUNS} fresh interpreters"
    )


def main() -> None:
    bench_request(0.0)
    bench_request(0.002)
    bench_tracer_import()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()

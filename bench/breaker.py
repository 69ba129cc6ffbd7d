"""(d) A rejection by an open circuit breaker against one upstream call.

Measured in the same run, against an upstream in its own process answering at once on loopback
and a real ``redis-server`` holding the shared breaker state:

- one upstream call: ``UpstreamClient.request`` on a pooled keep-alive connection;
- breaker rejection: ``CircuitBreaker.acquire()`` raising ``CircuitOpen`` once the circuit is
  open (the open state is remembered in process memory, so no network I/O);
- proxy rejection: the whole ``Proxy.handle`` answering 503 with ``Retry-After`` for a route
  whose circuit is open (event parsing, path check, the answer, the log line).

Goal: a rejection costs at most 0.1x one upstream call.

Run: ``.venv/bin/python -m bench.breaker``
"""

from __future__ import annotations

import os

from bench.proxy import percentile, quiet, timed, upstream


def main() -> None:
    import redis

    from devstack.services import start_redis

    with start_redis() as redis_service, upstream(0.0) as url:
        os.environ["POWERTOOLS_SERVICE_NAME"] = "tickets-proxy"
        import proxy

        from gateway.breaker import CircuitBreaker, CircuitOpen
        from gateway.upstream import ConnectionPool, UpstreamClient
        from tests.conftest import load_event

        client = redis.Redis.from_url(f"redis://{redis_service.address}/0")
        pool = ConnectionPool()
        upstream_client = UpstreamClient(url, timeout=5, pool=pool)
        breaker = CircuitBreaker("tickets", client=client, failure_threshold=1, cooldown=600)
        breaker.record(breaker.acquire(), success=False)

        def rejected() -> None:
            try:
                breaker.acquire()
            except CircuitOpen:
                return
            raise AssertionError("the circuit should be open")

        settings = proxy.ProxySettings("tickets", url, timeout=5)
        gateway = proxy.Proxy(settings, redis=client, pool=pool, breaker=breaker)
        event = load_event("http-tickets-get")

        def proxy_rejected() -> None:
            assert gateway.handle(event)["statusCode"] == 503

        with quiet(proxy):
            timed(lambda: upstream_client.request("GET", "/tickets/t-1"), 200)
            call_times = timed(lambda: upstream_client.request("GET", "/tickets/t-1"), 3000)
            reject_times = timed(rejected, 20000)
            proxy_times = timed(proxy_rejected, 5000)
        pool.close()

    call50 = percentile(call_times, 0.5)
    for name, times in (("breaker rejection", reject_times), ("proxy 503", proxy_times)):
        p50 = percentile(times, 0.5)
        print(
            f"{name:<18} p50 {p50 * 1e6:8.2f} us   p99 {percentile(times, 0.99) * 1e6:8.2f} us   "
            f"{p50 / call50:.3f}x one upstream call (goal <= 0.1)"
        )
    print(
        f"{'upstream call':<18} p50 {call50 * 1e6:8.2f} us   p99 "
        f"{percentile(call_times, 0.99) * 1e6:8.2f} us"
    )


if __name__ == "__main__":
    main()

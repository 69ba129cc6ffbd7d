"""(c) The board against the slower of its two upstreams called alone.

The Ticket service answers after 20 ms, the Assignment service after 30 ms, each in a process of
its own on loopback. Measured in the same run:

- slower alone: a keep-alive ``http.client`` GET to the Assignment service;
- one hop: the same GET to an upstream answering at once (one loopback HTTP exchange);
- one gateway hop: what the tickets proxy adds to that same GET (``proxy.handler`` minus the
  direct call, p50 against p50);
- board: ``board.handler(event, context)`` as Lambda calls it: 403 check, rate limit on a real
  ``redis-server``, both requests sent before either answer is read, one JSON answer.

Goal: the board takes at most one hop more than the slower upstream; the excess is printed in
both units. Fetched one after the other, it would take 50 ms and more.

Run: ``.venv/bin/python -m bench.board``
"""

from __future__ import annotations

import os

from bench.proxy import direct_call, percentile, quiet, timed, upstream

TICKETS_DELAY = 0.020
ASSIGNMENTS_DELAY = 0.030
ROUNDS = 3
PER_ROUND = 60


def main() -> None:
    from devstack.services import start_redis

    with (
        start_redis() as redis_service,
        upstream(TICKETS_DELAY) as tickets_url,
        upstream(ASSIGNMENTS_DELAY) as assignments_url,
        upstream(0.0) as instant_url,
    ):
        os.environ.update(
            {
                "TICKETS_URL": tickets_url,
                "ASSIGNMENTS_URL": assignments_url,
                "ROUTE_GROUP": "tickets",
                "UPSTREAM_URL": instant_url,
                "REDIS_URL": f"redis://{redis_service.address}/0",
                "RATE_LIMIT": "1000000/60",
                "POWERTOOLS_SERVICE_NAME": "board",
            }
        )
        import board
        import proxy

        from gateway.redis_client import reset_redis
        from tests.conftest import load_event
        from tests.support.upstreams import LambdaContext

        board.reset()
        proxy.reset()
        reset_redis()
        event = load_event("http-board")
        context = LambdaContext()
        headers = {"accept": "application/json", "x-user-id": "u-42", "x-user-roles": "member"}
        slower = direct_call(assignments_url, "/assignments?projectId=p-1", headers)
        hop = direct_call(instant_url, "/tickets?projectId=p-1", headers)
        proxied_event = load_event("http-tickets-get")
        proxied_event["rawPath"] = "/tickets"
        proxied_event["rawQueryString"] = "projectId=p-1"

        def whole_board() -> object:
            result = board.handler(event, context)
            assert result["statusCode"] == 200, result
            assert '"degraded":[]' in result["body"], result
            return result

        def proxied() -> object:
            result = proxy.handler(proxied_event, context)
            assert result["statusCode"] == 200, result
            return result

        slower_times: list[float] = []
        board_times: list[float] = []
        hop_times: list[float] = []
        proxied_times: list[float] = []
        with quiet(board), quiet(proxy):
            timed(slower, 5)
            timed(whole_board, 5)
            timed(proxied, 100)
            for _ in range(4):
                hop_times += timed(hop, 250)
                proxied_times += timed(proxied, 250)
            for _ in range(ROUNDS):
                slower_times += timed(slower, PER_ROUND)
                board_times += timed(whole_board, PER_ROUND)
            board.reset()
            proxy.reset()

    slow50 = percentile(slower_times, 0.5)
    hop50 = percentile(hop_times, 0.5)
    gateway_hop = percentile(proxied_times, 0.5) - hop50
    board50 = percentile(board_times, 0.5)
    excess = board50 - slow50
    print(
        f"slower upstream alone p50 {slow50 * 1000:7.2f} ms   p99 "
        f"{percentile(slower_times, 0.99) * 1000:7.2f} ms"
    )
    print(
        f"board                 p50 {board50 * 1000:7.2f} ms   p99 "
        f"{percentile(board_times, 0.99) * 1000:7.2f} ms"
    )
    print(
        f"one loopback exchange p50 {hop50 * 1000:7.2f} ms; one gateway hop (proxy - direct) "
        f"p50 {gateway_hop * 1000:.2f} ms"
    )
    print(
        f"board - slower = {excess * 1000:.2f} ms = {excess / hop50:.1f} loopback exchanges = "
        f"{excess / gateway_hop:.2f} gateway hops (goal <= 1 hop); board / slower = "
        f"{board50 / slow50:.2f}x; sequential would be >= "
        f"{(TICKETS_DELAY + ASSIGNMENTS_DELAY) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()

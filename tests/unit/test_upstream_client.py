"""The pooled upstream client against real HTTP servers on loopback."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.services import free_port
from gateway.config import ConfigError
from gateway.upstream import (
    ConnectionPool,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.support.upstreams import (
    Upstream,
    binary,
    close_early,
    drip,
    echo,
    huge,
    raw,
    self_signed_tls,
    slow,
    truncated,
)


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    pool = ConnectionPool()
    yield pool
    pool.close()


def test_client_sends_target_query_and_body_byte_for_byte(pool: ConnectionPool) -> None:
    with Upstream(echo()) as upstream:
        client = UpstreamClient(upstream.url + "/v1", timeout=2, pool=pool)
        client.request("POST", "/tickets/t-1", query="b=2&a=1&a=1&flag&x=%2F", body=b"\x00\xffz")
    request = upstream.requests[0]
    assert request.target == "/v1/tickets/t-1?b=2&a=1&a=1&flag&x=%2F"
    assert request.body == b"\x00\xffz"
    assert request.header("Host") == [f"127.0.0.1:{upstream.port}"]


def test_client_reuses_one_connection_for_consecutive_requests(pool: ConnectionPool) -> None:
    with Upstream(echo()) as upstream:
        client = UpstreamClient(upstream.url, timeout=2, pool=pool)
        for _ in range(5):
            assert client.request("GET", "/x").status == 200
    assert upstream.accepts == 1
    assert len(upstream.requests) == 5


def test_client_replaces_a_pooled_connection_the_upstream_closed(pool: ConnectionPool) -> None:
    with Upstream(echo()) as upstream:
        client = UpstreamClient(upstream.url, timeout=2, pool=pool)
        client.request("GET", "/x")
        upstream.drop_connections()
        assert client.request("GET", "/x").status == 200
    assert upstream.accepts == 2


def test_client_times_out_a_slow_upstream_with_504_error() -> None:
    with Upstream(slow(2.0)) as upstream:
        client = UpstreamClient(upstream.url, timeout=0.3, pool=ConnectionPool())
        with pytest.raises(UpstreamTimeout):
            client.request("GET", "/x")


@pytest.mark.parametrize("in_headers", [False, True])
def test_client_total_deadline_bounds_a_dripping_upstream(in_headers: bool) -> None:
    # GIVEN an upstream that sends one byte every 50 ms, 100 bytes: 5 s in all, each recv quick
    with Upstream(drip(100, 0.05, in_headers=in_headers)) as upstream:
        client = UpstreamClient(upstream.url, timeout=0.4, pool=ConnectionPool())
        # THEN a per-recv timeout would never fire, the total deadline does
        with pytest.raises(UpstreamTimeout):
            client.request("GET", "/x")
        assert len(upstream.requests) == 1


def test_client_refused_connection_is_upstream_unavailable() -> None:
    client = UpstreamClient(f"http://127.0.0.1:{free_port()}", timeout=1, pool=ConnectionPool())
    with pytest.raises(UpstreamUnavailable):
        client.request("GET", "/x")


@pytest.mark.parametrize("behaviour", [close_early(), truncated(1000, 10)])
def test_client_connection_closed_early_is_upstream_unavailable(behaviour: Any) -> None:
    with Upstream(behaviour) as upstream:
        client = UpstreamClient(upstream.url, timeout=1, pool=ConnectionPool())
        with pytest.raises(UpstreamUnavailable):
            client.request("POST", "/x", body=b"{}")
    # A POST is never sent twice, even when the connection was fresh.
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_client_refuses_a_body_larger_than_the_limit(chunked: bool) -> None:
    with Upstream(huge(3 * 1024 * 1024, chunked=chunked)) as upstream:
        client = UpstreamClient(
            upstream.url, timeout=5, pool=ConnectionPool(), max_body_bytes=1024 * 1024
        )
        with pytest.raises(ResponseTooLarge):
            client.request("GET", "/x")


def test_client_reads_a_large_chunked_body_whole(pool: ConnectionPool) -> None:
    with Upstream(huge(3 * 1024 * 1024, chunked=True)) as upstream:
        response = UpstreamClient(upstream.url, timeout=5, pool=pool).request("GET", "/x")
    assert response.body == b"z" * (3 * 1024 * 1024)
    assert response.header("transfer-encoding") == "chunked"


def test_client_returns_binary_bodies_and_repeated_headers_unchanged(pool: ConnectionPool) -> None:
    data = os.urandom(4096)
    with Upstream(binary(data, "image/png")) as upstream:
        response = UpstreamClient(upstream.url, timeout=2, pool=pool).request("GET", "/x")
    assert response.body == data
    assert response.header("Content-Type") == "image/png"

    headers = [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2026")]
    with Upstream(raw(201, headers, b"{}")) as upstream:
        response = UpstreamClient(upstream.url, timeout=2, pool=pool).request("GET", "/x")
    assert response.status == 201
    assert [value for name, value in response.headers if name == "Set-Cookie"] == [
        "a=1; Path=/",
        "b=2; Expires=Wed, 21 Oct 2026",
    ]


def test_client_sends_header_values_as_given(pool: ConnectionPool) -> None:
    with Upstream(echo()) as upstream:
        client = UpstreamClient(upstream.url, timeout=2, pool=pool)
        response = client.request("GET", "/x", headers=[("x-a", "1"), ("x-a", "2")])
    seen = json.loads(response.body)["headers"]
    assert [value for name, value in seen if name == "x-a"] == ["1", "2"]


@pytest.mark.parametrize(
    "url",
    ["ftp://h/", "http://", "tickets.internal", "http://h/?q=1", "http://u:p@h/", "http://h/#f"],
)
def test_client_refuses_a_malformed_upstream_url(url: str) -> None:
    with pytest.raises(ConfigError):
        UpstreamClient(url)


def test_client_over_tls_reuses_its_connection_and_keeps_the_deadline(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed_tls(tmp_path)
    pool = ConnectionPool(tls=client_tls)
    try:
        with Upstream(echo(), tls=server_tls) as upstream:
            client = UpstreamClient(upstream.url, timeout=2, pool=pool)
            for _ in range(3):
                assert client.request("GET", "/secure").status == 200
        assert upstream.accepts == 1

        with Upstream(drip(100, 0.05), tls=server_tls) as upstream:
            client = UpstreamClient(upstream.url, timeout=0.4, pool=pool)
            with pytest.raises(UpstreamTimeout):
                client.request("GET", "/secure")
    finally:
        pool.close()


def test_client_refuses_an_upstream_certificate_it_does_not_trust(tmp_path: Path) -> None:
    server_tls, _ = self_signed_tls(tmp_path)
    with Upstream(echo(), tls=server_tls) as upstream:
        client = UpstreamClient(upstream.url, timeout=2, pool=ConnectionPool())
        with pytest.raises(UpstreamUnavailable):
            client.request("GET", "/secure")
    assert upstream.requests == []


def test_client_requests_sent_before_reading_run_in_parallel(pool: ConnectionPool) -> None:
    # GIVEN two upstreams that answer only once both hold a request
    barrier = threading.Barrier(2, timeout=3)
    with Upstream(echo(), barrier=barrier) as first, Upstream(echo(), barrier=barrier) as second:
        pending = [
            UpstreamClient(upstream.url, timeout=5, pool=pool).send("GET", "/x")
            for upstream in (first, second)
        ]
        statuses = [each.result().status for each in pending]
    assert statuses == [200, 200]
    assert not barrier.broken


def test_client_cancelled_request_does_not_return_its_connection_to_the_pool(
    pool: ConnectionPool,
) -> None:
    with Upstream(slow(0.2)) as upstream:
        client = UpstreamClient(upstream.url, timeout=5, pool=pool)
        client.send("GET", "/x").cancel()
        assert client.request("GET", "/x").status == 200
    assert upstream.accepts == 2

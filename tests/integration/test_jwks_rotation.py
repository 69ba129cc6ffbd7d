"""The JWKS cache against a real HTTP server on a loopback port: rotation, rate limit, timeouts.

Time between fetches is a fake clock handed to the cache; the fetches themselves are real HTTP.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.tokens import (
    JwksCache,
    JwksFetchError,
    KeyNotFoundError,
    TokenSettings,
    TokenVerifier,
)
from gateway.tokens.jwks import fetch_key_set
from tests.support.jwt_keys import AUDIENCE, ISSUER, JwksServer, make_token, rsa_key


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with JwksServer([rsa_key("2026-01")]) as jwks:
        yield jwks


def verifier_for(server: JwksServer, clock: Clock, **cache: Any) -> TokenVerifier:
    settings = TokenSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("RS256",), jwks_url=server.url
    )
    cache.setdefault("min_refetch_seconds", 30)
    cache.setdefault("cache_seconds", 300)
    keys = JwksCache(server.url, clock=clock, fetch_timeout=1.5, **cache)
    return TokenVerifier(settings, keys)


def test_key_rotation_picks_up_new_kid_and_drops_removed_one(server: JwksServer) -> None:
    clock = Clock()
    check = verifier_for(server, clock)
    old, new = rsa_key("2026-01"), rsa_key("2026-02")
    assert check.verify(make_token(old)).user_id == "user-1"

    # The Auth service publishes the new key, then signs with it.
    server.set_keys([old, new])
    clock.now += 31
    assert check.verify(make_token(new)).user_id == "user-1"
    assert server.requests == 2

    # The old key is withdrawn: still cached until the cache expires, refused after the refetch.
    server.set_keys([new])
    clock.now += 100
    assert check.verify(make_token(old)).user_id == "user-1"
    clock.now += 300
    with pytest.raises(KeyNotFoundError):
        check.verify(make_token(old))
    assert check.verify(make_token(new)).user_id == "user-1"
    assert server.requests == 3


def test_new_kid_within_refetch_interval_is_refused_until_interval_passes(
    server: JwksServer,
) -> None:
    clock = Clock()
    check = verifier_for(server, clock, min_refetch_seconds=30)
    check.verify(make_token(rsa_key("2026-01")))
    server.set_keys([rsa_key("2026-01"), rsa_key("2026-02")])

    clock.now += 10
    with pytest.raises(KeyNotFoundError):
        check.verify(make_token(rsa_key("2026-02")))

    clock.now += 20
    assert check.verify(make_token(rsa_key("2026-02"))).user_id == "user-1"


def test_random_kids_cannot_make_the_cache_fetch_on_every_request(server: JwksServer) -> None:
    clock = Clock()
    check = verifier_for(server, clock, min_refetch_seconds=30)
    check.verify(make_token(rsa_key("2026-01")))

    for index in range(200):
        clock.now += 1
        with pytest.raises(KeyNotFoundError):
            check.verify(make_token(rsa_key("2026-01"), headers={"kid": f"made-up-{index}"}))

    # 200 s of made-up kids: one fetch per 30 s interval at most, on top of the first.
    assert server.requests <= 1 + 200 // 30 + 1
    assert server.requests >= 2


def test_fetch_of_hanging_server_fails_at_timeout() -> None:
    with JwksServer(mode="hang") as hanging, pytest.raises(JwksFetchError) as raised:
        fetch_key_set(hanging.url, 0.3)

    assert "timed out" in str(raised.value)


def test_fetch_of_dripping_server_fails_although_every_read_makes_progress() -> None:
    # One byte every 0.1 s: a per-read socket timeout would never fire, and the answer would
    # complete after about 4 s. The total deadline must cut it at 0.5 s.
    with JwksServer([rsa_key("2026-01")], mode="drip") as dripping:
        dripping.drip_interval = 0.1
        with pytest.raises(JwksFetchError) as raised:
            fetch_key_set(dripping.url, 0.5)

    assert "timed out" in str(raised.value)


def test_fetch_of_dripping_server_succeeds_when_it_fits_in_the_deadline() -> None:
    # The same slow server, given the time: proves the test above failed on the deadline alone.
    with JwksServer([rsa_key("2026-01")], mode="drip") as dripping:
        dripping.drip_interval = 0.001
        document = fetch_key_set(dripping.url, 1.5)

    assert [key["kid"] for key in document["keys"]] == ["2026-01"]


def test_fetch_of_closed_port_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(JwksFetchError):
        fetch_key_set(f"http://127.0.0.1:{port}/jwks.json", 1.5)


@pytest.mark.parametrize("mode", ["error", "redirect", "huge"])
def test_fetch_refuses_error_redirect_and_oversized_answers(mode: str) -> None:
    with JwksServer([rsa_key("2026-01")], mode=mode) as odd, pytest.raises(JwksFetchError):
        fetch_key_set(odd.url, 1.5)


def test_cache_refuses_document_that_is_not_a_key_set(server: JwksServer) -> None:
    server.set_document({"keys": "rotating, back soon"})
    keys = JwksCache(server.url, clock=Clock(), min_refetch_seconds=30)

    with pytest.raises(JwksFetchError):
        keys.key_for("2026-01", "RS256")


def test_cache_serves_cached_keys_while_server_fails(server: JwksServer) -> None:
    clock = Clock()
    check = verifier_for(server, clock, cache_seconds=60)
    check.verify(make_token(rsa_key("2026-01")))

    server.mode = "error"
    clock.now += 61

    assert check.verify(make_token(rsa_key("2026-01"))).user_id == "user-1"
    assert server.requests == 2


def test_cache_fetches_once_when_threads_race_on_a_cold_start(server: JwksServer) -> None:
    clock = Clock()
    check = verifier_for(server, clock)
    token = make_token(rsa_key("2026-01"))
    results: list[str] = []

    def verify() -> None:
        results.append(check.verify(token).user_id)

    threads = [threading.Thread(target=verify) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert results == ["user-1"] * 8
    assert server.requests == 1

"""JwksCache and parse_key_set: which keys are kept, and when the cache fetches (fake clock)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.tokens import JwksCache, JwksFetchError, KeyNotFoundError
from gateway.tokens.jwks import MAX_FETCH_TIMEOUT_SECONDS, parse_key_set
from tests.support.jwt_keys import ec_key, rsa_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetch:
    """Serves whatever ``document`` is now, or raises ``failure``; counts calls."""

    def __init__(self, *keys: Any) -> None:
        self.document: Any = {"keys": [key.public_jwk() for key in keys]}
        self.failure: Exception | None = None
        self.calls = 0

    def __call__(self, url: str, timeout: float) -> Any:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return self.document

    def serve(self, *keys: Any) -> None:
        self.document = {"keys": [key.public_jwk() for key in keys]}


def cache(fetch: Fetch, clock: Clock, **kwargs: Any) -> JwksCache:
    kwargs.setdefault("min_refetch_seconds", 30)
    kwargs.setdefault("cache_seconds", 300)
    return JwksCache("http://127.0.0.1:9/jwks.json", clock=clock, fetch=fetch, **kwargs)


def test_parse_key_set_keeps_rsa_and_ec_keys_by_kid() -> None:
    keys = parse_key_set({"keys": [rsa_key("r").public_jwk(), ec_key("e").public_jwk()]})

    assert sorted(keys) == ["e", "r"]
    assert keys["r"].accepts("RS256")
    assert keys["e"].accepts("ES256")
    assert not keys["e"].accepts("ES384")


def test_parse_key_set_skips_unusable_keys_with_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = rsa_key("good").public_jwk()
    private = {**rsa_key("priv").public_jwk(), "d": "AQAB"}
    document = {
        "keys": [
            good,
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            private,
            rsa_key("small", bits=1024).public_jwk(),
            {**rsa_key("enc").public_jwk(), "use": "enc"},
            {k: v for k, v in rsa_key("nokid").public_jwk().items() if k != "kid"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            {**good},
            "not an object",
        ]
    }

    with caplog.at_level(logging.WARNING, logger="gateway.tokens.jwks"):
        keys = parse_key_set(document)

    assert list(keys) == ["good"]
    assert len(caplog.records) == 8


@pytest.mark.parametrize("document", [[], {"keys": "none"}, {"nokeys": []}, "text"])
def test_parse_key_set_rejects_document_that_is_not_a_key_set(document: Any) -> None:
    with pytest.raises(JwksFetchError):
        parse_key_set(document)


def test_cache_fetches_on_first_use_only() -> None:
    fetch, clock = Fetch(rsa_key("k1")), Clock()
    keys = cache(fetch, clock)

    keys.key_for("k1", "RS256")
    clock.now += 100
    keys.key_for("k1", "RS256")

    assert fetch.calls == 1


def test_cache_unknown_kids_cause_at_most_one_fetch_per_interval() -> None:
    fetch, clock = Fetch(rsa_key("k1")), Clock()
    keys = cache(fetch, clock, min_refetch_seconds=30)
    keys.key_for("k1", "RS256")

    for index in range(50):
        with pytest.raises(KeyNotFoundError):
            keys.key_for(f"random-{index}", "RS256")
        clock.now += 0.5

    # 25 seconds of random kids, all within the interval after the first fetch: no refetch.
    assert fetch.calls == 1
    clock.now += 10
    for index in range(50):
        with pytest.raises(KeyNotFoundError):
            keys.key_for(f"again-{index}", "RS256")
    assert fetch.calls == 2


def test_cache_picks_up_rotated_key_on_unknown_kid_after_interval() -> None:
    fetch, clock = Fetch(rsa_key("k1")), Clock()
    keys = cache(fetch, clock)
    keys.key_for("k1", "RS256")

    fetch.serve(rsa_key("k1"), rsa_key("k2"))
    clock.now += 31

    assert keys.key_for("k2", "RS256") is not None
    assert fetch.calls == 2


def test_cache_drops_removed_key_when_cache_expires() -> None:
    fetch, clock = Fetch(rsa_key("k1"), rsa_key("k2")), Clock()
    keys = cache(fetch, clock, cache_seconds=300)
    keys.key_for("k1", "RS256")
    fetch.serve(rsa_key("k2"))

    clock.now += 299
    keys.key_for("k1", "RS256")
    clock.now += 1

    with pytest.raises(KeyNotFoundError):
        keys.key_for("k1", "RS256")
    assert keys.kids() == ["k2"]


def test_cache_keeps_cached_keys_when_refetch_fails(caplog: pytest.LogCaptureFixture) -> None:
    fetch, clock = Fetch(rsa_key("k1")), Clock()
    keys = cache(fetch, clock, cache_seconds=60)
    keys.key_for("k1", "RS256")
    fetch.failure = JwksFetchError("the JWKS URL answered HTTP 503")
    clock.now += 61

    with caplog.at_level(logging.WARNING, logger="gateway.tokens.jwks"):
        assert keys.key_for("k1", "RS256") is not None

    assert fetch.calls == 2
    assert "keeping cached keys" in caplog.text


def test_cache_without_keys_raises_fetch_error_and_waits_before_retrying() -> None:
    fetch, clock = Fetch(rsa_key("k1")), Clock()
    fetch.failure = JwksFetchError("timed out")
    keys = cache(fetch, clock, min_refetch_seconds=30)

    with pytest.raises(JwksFetchError):
        keys.key_for("k1", "RS256")
    with pytest.raises(JwksFetchError):
        keys.key_for("k1", "RS256")
    assert fetch.calls == 1

    fetch.failure = None
    clock.now += 30
    assert keys.key_for("k1", "RS256") is not None
    assert fetch.calls == 2


@pytest.mark.parametrize("configured", [5.0, 0.0, -1.0])
def test_cache_fetch_timeout_never_exceeds_limit(configured: float) -> None:
    keys = cache(Fetch(), Clock(), fetch_timeout=configured)

    assert keys.fetch_timeout == MAX_FETCH_TIMEOUT_SECONDS


def test_cache_reads_intervals_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWKS_MIN_REFETCH_SECONDS", "7")
    monkeypatch.setenv("JWKS_CACHE_SECONDS", "70")
    monkeypatch.setenv("JWKS_FETCH_TIMEOUT_SECONDS", "0.5")

    keys = JwksCache("http://127.0.0.1:9/jwks.json")

    assert (keys.min_refetch_seconds, keys.cache_seconds, keys.fetch_timeout) == (7, 70, 0.5)

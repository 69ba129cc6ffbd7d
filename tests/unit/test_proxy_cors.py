"""The frontend origin is checked when a function starts; no function widens CORS."""

from __future__ import annotations

import importlib
from types import ModuleType

import board
import proxy
import pytest

from gateway.cors import CorsConfigError, frontend_origin, validate_origin


@pytest.mark.parametrize(
    "origin",
    [
        "https://board.example.com",
        "http://127.0.0.1:5173",
        "http://localhost:3000",
        "https://[::1]:8443",
        "https://xn--bcher-kva.example",
    ],
)
def test_cors_accepts_one_exact_origin(origin: str) -> None:
    assert validate_origin(origin) == origin


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "null",
        "https://*.example.com",
        "https://board.example.com/*",
        "*://board.example.com",
        "https://board.example.com/",
        "https://board.example.com/app",
        "https://board.example.com?x=1",
        "https://board.example.com#top",
        "https://user:pw@board.example.com",
        "https://Board.Example.com",
        "board.example.com",
        "ftp://board.example.com",
        "https://a.example.com,https://b.example.com",
        "https://a.example.com https://b.example.com",
        "https://board.example.com:99999",
        "https://",
    ],
)
def test_cors_refuses_wildcards_null_paths_and_anything_but_one_origin(origin: str) -> None:
    with pytest.raises(CorsConfigError) as caught:
        validate_origin(origin)
    assert "FRONTEND_ORIGIN" in str(caught.value)


def test_cors_unset_origin_means_none() -> None:
    assert frontend_origin("") is None


@pytest.mark.parametrize("module", [proxy, board])
@pytest.mark.parametrize("origin", ["*", "null", "https://*.example.com", "https://x.example/"])
def test_function_refuses_to_start_with_a_bad_frontend_origin(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, origin: str
) -> None:
    monkeypatch.setenv("FRONTEND_ORIGIN", origin)
    try:
        with pytest.raises(CorsConfigError):
            importlib.reload(module)
    finally:
        monkeypatch.delenv("FRONTEND_ORIGIN")
        importlib.reload(module)


def test_function_starts_with_a_good_frontend_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTEND_ORIGIN", "https://board.example.com")
    try:
        assert importlib.reload(proxy).FRONTEND_ORIGIN == "https://board.example.com"
    finally:
        monkeypatch.delenv("FRONTEND_ORIGIN")
        importlib.reload(proxy)

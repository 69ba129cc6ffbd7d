"""Path normalising: nothing a client writes may reach another service or another route."""

from __future__ import annotations

import pytest

from gateway.upstream import PathRejected, normalise_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/tickets", "/tickets"),
        ("/tickets/t-1", "/tickets/t-1"),
        ("/tickets/t-1/", "/tickets/t-1/"),
        ("/tickets//t-1///comments", "/tickets/t-1/comments"),
        ("/tickets/./t-1", "/tickets/t-1"),
        ("/tickets/a/../t-1", "/tickets/t-1"),
        ("/tickets/a/%2e%2e/t-1", "/tickets/t-1"),
        ("/tickets/a/%2E./t-1", "/tickets/t-1"),
        ("/tickets/%74-1", "/tickets/t-1"),
        ("/tickets/100%25", "/tickets/100%25"),
        ("/tickets/what?now", "/tickets/what%3Fnow"),
        ("/tickets/a#b", "/tickets/a%23b"),
        ("/tickets/caf\u00e9", "/tickets/caf%C3%A9"),
        ("/tickets/a b", "/tickets/a%20b"),
        ("/tickets/user@host:1", "/tickets/user@host:1"),
        ("/tickets/.well-known/x.json", "/tickets/.well-known/x.json"),
        ("/tickets/...", "/tickets/..."),
    ],
)
def test_normalise_path_keeps_paths_inside_the_group_in_canonical_form(
    path: str, expected: str
) -> None:
    assert normalise_path(path, "/tickets") == expected


@pytest.mark.parametrize(
    "path",
    [
        "/tickets/../auth/login",
        "/tickets/%2e%2e/auth/login",
        "/tickets/%2E%2E/auth/login",
        "/tickets/.%2e/auth/login",
        "/tickets/..",
        "/tickets/a/../../auth",
        "/tickets/../../../etc/passwd",
        "/ticketsx/t-1",
        "/tickets-admin",
        "/auth/login",
        "/",
    ],
)
def test_normalise_path_rejects_paths_that_resolve_outside_the_group(path: str) -> None:
    with pytest.raises(PathRejected):
        normalise_path(path, "/tickets")


@pytest.mark.parametrize(
    "path",
    [
        "/tickets/..%2fauth/login",
        "/tickets/%2F..%2Fauth",
        "/tickets/a%5c..%5cb",
        "/tickets/a%5C..",
        "/tickets/a\\..\\..\\auth",
        "/tickets/%252e%252e/auth",
        "/tickets/%252f",
        "/tickets/a%00b",
        "/tickets/a\x00b",
        "/tickets/a\r\nHost: evil",
        "/tickets/%0d%0aX: y",
        "/tickets/%ff%fe",
        "tickets/t-1",
        "/../tickets/t-1",
    ],
)
def test_normalise_path_rejects_encoded_separators_controls_and_malformed_paths(
    path: str,
) -> None:
    with pytest.raises(PathRejected):
        normalise_path(path, "/tickets")


def test_normalise_path_result_is_stable_when_applied_twice() -> None:
    once = normalise_path("/tickets/a/%2e%2e/caf\u00e9/what?/x y", "/tickets")
    assert normalise_path(once, "/tickets") == once

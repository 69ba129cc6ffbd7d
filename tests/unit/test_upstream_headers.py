"""Which headers cross the gateway: hop-by-hop ones never, client identity headers never."""

from __future__ import annotations

from gateway.upstream import forward_request_headers, forward_response_headers


def _names(headers: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in headers]


def test_request_headers_drop_hop_by_hop_and_connection_named_headers() -> None:
    incoming = [
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "Expires"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("proxy-connection", "keep-alive"),
        ("X-Secret-Hop", "1"),
        ("Host", "abc.execute-api.us-east-1.amazonaws.com"),
        ("Content-Length", "999"),
        ("Accept", "application/json"),
        ("Authorization", "Bearer t"),
    ]
    kept = forward_request_headers(incoming, user_id=None, roles=None, request_id=None)
    assert kept == [("accept", "application/json"), ("authorization", "Bearer t")]


def test_request_headers_replace_client_identity_headers_in_any_letter_case() -> None:
    incoming = [
        ("x-user-id", "admin"),
        ("X-User-Roles", "admin"),
        ("X-USER-ID", "admin"),
        ("x-User-Roles", "admin"),
        ("X-User-Anything", "admin"),
        ("x-request-id", "forged"),
    ]
    kept = forward_request_headers(incoming, user_id="u-42", roles="member", request_id="r-1")
    assert kept == [("x-user-id", "u-42"), ("x-user-roles", "member"), ("x-request-id", "r-1")]


def test_request_headers_on_a_public_route_carry_no_identity_at_all() -> None:
    kept = forward_request_headers(
        [("X-User-Id", "admin")], user_id=None, roles=None, request_id="r-1"
    )
    assert kept == [("x-request-id", "r-1")]


def test_response_headers_keep_repeats_and_drop_hop_by_hop() -> None:
    incoming = [
        ("Connection", "close, X-Internal"),
        ("X-Internal", "x"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "10"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Cache-Control", "no-store"),
    ]
    kept = forward_response_headers(incoming, allowed_origin=None)
    assert kept == [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("cache-control", "no-store")]


def test_response_headers_strip_an_upstream_wildcard_allow_origin() -> None:
    origin = "https://board.example.com"
    for value in ("*", "null", "https://evil.example.com"):
        kept = forward_response_headers(
            [("Access-Control-Allow-Origin", value)], allowed_origin=origin
        )
        assert kept == []
    kept = forward_response_headers(
        [("Access-Control-Allow-Origin", origin)], allowed_origin=origin
    )
    assert kept == [("access-control-allow-origin", origin)]

"""Which headers cross the gateway, in either direction.

Hop-by-hop headers (RFC 9110 7.6.1) describe one connection and never travel on: ``Connection``,
``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, every ``Proxy-*`` header,
and any header the ``Connection`` header names. ``Host`` and ``Content-Length`` are set again for
the upstream's own connection.

Identity headers (``x-user-*``) are the gateway's word to the upstreams about who calls: a client's
own, in any letter case, are dropped, then ``x-user-id`` and ``x-user-roles`` are added from the
authorizer's context, with ``x-request-id`` carrying API Gateway's request id.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "HOP_BY_HOP",
    "forward_request_headers",
    "forward_response_headers",
]

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
# Set again by the gateway for the next hop, so a client's value must not ride along.
_REPLACED_ON_REQUEST = frozenset({"host", "content-length", "x-request-id"})
_REPLACED_ON_RESPONSE = frozenset({"content-length"})

Header = tuple[str, str]


def _connection_tokens(headers: Iterable[Header]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def _hop_by_hop(name: str, named: set[str]) -> bool:
    return name in HOP_BY_HOP or name.startswith("proxy-") or name in named


def forward_request_headers(
    headers: Iterable[Header],
    *,
    user_id: str | None,
    roles: str | None,
    request_id: str | None,
) -> list[Header]:
    """The client's headers as the upstream should see them, identity headers set by us."""
    headers = list(headers)
    named = _connection_tokens(headers)
    kept: list[Header] = []
    for name, value in headers:
        lowered = name.lower()
        if (
            _hop_by_hop(lowered, named)
            or lowered in _REPLACED_ON_REQUEST
            or lowered.startswith("x-user-")
        ):
            continue
        kept.append((lowered, value))

    if user_id is not None:
        kept.append(("x-user-id", user_id))
        kept.append(("x-user-roles", roles or ""))
    if request_id:
        kept.append(("x-request-id", request_id))
    return kept


def forward_response_headers(
    headers: Iterable[Header], *, allowed_origin: str | None
) -> list[Header]:
    """The upstream's headers as the client should see them, names in lower case.

    ``Access-Control-Allow-Origin`` passes only when it names the frontend's own origin: the
    HTTP API's CorsConfiguration answers for CORS, and an upstream's wildcard must not widen it.
    """
    headers = list(headers)
    named = _connection_tokens(headers)
    kept: list[Header] = []
    for name, value in headers:
        lowered = name.lower()
        if _hop_by_hop(lowered, named) or lowered in _REPLACED_ON_RESPONSE:
            continue
        if lowered == "access-control-allow-origin" and value.strip() != allowed_origin:
            continue
        kept.append((lowered, value))
    return kept

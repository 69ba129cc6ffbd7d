"""The frontend's origin, checked when a function starts.

The HttpApi's CorsConfiguration answers preflight requests and adds ``Access-Control-Allow-Origin``
to every answer; no function adds it. The functions still read ``FRONTEND_ORIGIN``, for two
reasons: to refuse to start when it is set to something that would open the API to every site
(the template parameter's pattern refuses the same values, this is the second line), and to strip
an upstream's own ``Access-Control-Allow-Origin`` unless it names exactly this origin.

A valid origin is what a browser sends in its ``Origin`` header: ``scheme://host[:port]``, scheme
``http`` or ``https``, lower case, nothing after the authority. Refused: ``*``, ``null``, any
wildcard, several origins, a path (even a lone ``/``), a query, a fragment, credentials.

Environment variable read: ``FRONTEND_ORIGIN`` (unset: no origin, every upstream
``Access-Control-Allow-Origin`` is stripped).
"""

from __future__ import annotations

import re

from gateway.config import ConfigError, env_str

__all__ = ["CorsConfigError", "frontend_origin", "validate_origin"]

_ORIGIN = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


class CorsConfigError(ConfigError):
    """``FRONTEND_ORIGIN`` is not one ``scheme://host[:port]`` origin; the function won't start."""


def validate_origin(value: str, name: str = "FRONTEND_ORIGIN") -> str:
    """Return ``value`` if it is one exact browser origin, else raise :class:`CorsConfigError`."""
    origin = value.strip()
    if origin in ("*", "null") or "*" in origin:
        raise CorsConfigError(
            f"{name}={value!r}: a wildcard or 'null' would let every site call the API with the "
            "user's credentials; give the frontend's exact origin, e.g. https://board.example.com"
        )
    if "," in origin or " " in origin:
        raise CorsConfigError(f"{name}={value!r}: give exactly one origin")
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        raise CorsConfigError(
            f"{name}={value!r}: an origin is scheme://host[:port] in lower case, with http or "
            "https and no path, query, fragment or credentials (browsers send no trailing '/')"
        )
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise CorsConfigError(f"{name}={value!r}: port {port} is out of range")
    return origin


def frontend_origin(value: str | None = None) -> str | None:
    """The validated ``FRONTEND_ORIGIN`` (or ``value``), or None when it is not set."""
    raw = env_str("FRONTEND_ORIGIN", None, value)
    if raw is None or raw.strip() == "":
        return None
    return validate_origin(raw)

"""Path normalising: what reaches an upstream never leaves the route group's prefix.

HTTP APIs hand Lambda ``rawPath`` already percent-decoded, while the local emulator and other
front doors may not, so the normaliser accepts both and applies one rule set:

- control characters and backslashes are refused, as are encoded slashes (``%2f``, ``%5c``) and
  their double encodings (``%252f``, ``%255c``, ``%252e``): a segment boundary must mean the same
  thing to the gateway and to every upstream, whichever of them decodes how often;
- each segment is percent-decoded once and encoded again in one canonical form (RFC 3986 6.2.2),
  so ``%2e%2e`` is the dot segment ``..`` and a decoded ``?`` or ``#`` cannot start a query;
- dot segments are resolved (RFC 3986 5.2.4) and empty segments dropped; climbing above the root
  is refused;
- the result must be the route group's prefix or lie below it, else it is refused.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from gateway.upstream.errors import PathRejected

__all__ = ["normalise_path"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_ENCODED_SEPARATOR = re.compile(r"%(?:25)?(?:2f|5c)|%252e", re.IGNORECASE)
# RFC 3986 pchar minus percent: unreserved, sub-delims, ":" and "@" stay literal.
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"


def normalise_path(path: str, prefix: str) -> str:
    """Return ``path`` in canonical form, or raise :class:`PathRejected`.

    ``prefix`` is the route group's prefix, such as ``/tickets``; the result equals it or starts
    with it followed by ``/``. A trailing slash in ``path`` is kept, since upstreams may tell
    ``/tickets/`` from ``/tickets``.
    """
    if not path.startswith("/"):
        raise PathRejected(f"path {path!r} is not absolute")
    if _CONTROL.search(path) or _ENCODED_SEPARATOR.search(path):
        raise PathRejected(f"path {path!r} holds a control character or an encoded separator")

    segments: list[str] = []
    for raw in path.split("/")[1:]:
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError as exc:
            raise PathRejected(f"path {path!r} is not UTF-8 once decoded") from exc
        if _CONTROL.search(segment) or "/" in segment:
            raise PathRejected(f"path {path!r} decodes to a control character or separator")
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise PathRejected(f"path {path!r} climbs above the root")
            segments.pop()
            continue
        segments.append(quote(segment, safe=_SEGMENT_SAFE))

    result = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        result += "/"
    prefix = prefix.rstrip("/")
    if prefix and result != prefix and not result.startswith(prefix + "/"):
        raise PathRejected(f"path {path!r} resolves to {result!r}, outside {prefix!r}")
    return result

"""Route selection as HTTP APIs do it, without I/O.

AWS's rule ("Routing API requests" in the HTTP API developer guide): a route whose path matches
in full beats one with path variables, which beats one with a greedy ``{proxy+}`` variable; a route
for the request's method beats ``ANY`` for the same path; ``$default`` catches what nothing else
matches. Here every matching route gets a rank, segment by segment (literal, then ``{name}``, then
``{name+}``), then method before ``ANY``, and the lowest rank wins. A greedy variable matches one
or more segments, so ``/pets/{proxy+}`` does not match ``/pets``. Paths are matched decoded; the
path parameters are the decoded segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from localgw.template import Route

__all__ = ["RouteMatch", "RouteTable"]

_LITERAL, _VARIABLE, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _Compiled:
    route: Route
    segments: tuple[tuple[int, str], ...]


def _compile(route: Route) -> _Compiled:
    segments: list[tuple[int, str]] = []
    for part in route.path.strip("/").split("/") if route.path != "/" else []:
        if part.startswith("{") and part.endswith("+}"):
            segments.append((_GREEDY, part[1:-2]))
        elif part.startswith("{") and part.endswith("}"):
            segments.append((_VARIABLE, part[1:-1]))
        else:
            segments.append((_LITERAL, part))
    return _Compiled(route, tuple(segments))


def _match(compiled: _Compiled, parts: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, (kind, name) in enumerate(compiled.segments):
        if kind == _GREEDY:
            if index >= len(parts):
                return None
            params[name] = "/".join(parts[index:])
            return params
        if index >= len(parts):
            return None
        if kind == _LITERAL and parts[index] != name:
            return None
        if kind == _VARIABLE:
            if parts[index] == "":
                return None
            params[name] = parts[index]
    return params if len(parts) == len(compiled.segments) else None


class RouteTable:
    """The routes of one HTTP API; :meth:`match` picks the one a request goes to."""

    def __init__(self, routes: tuple[Route, ...] | list[Route]) -> None:
        self._default = next((r for r in routes if r.path == "$default"), None)
        self._routes = [_compile(r) for r in routes if r.path != "$default"]

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route for ``method`` and ``path`` (raw, percent-encoded), or None: 404."""
        raw = path.split("?", 1)[0]
        parts = (
            [unquote(part) for part in raw.strip("/").split("/")] if raw not in {"", "/"} else []
        )
        if raw.endswith("/") and raw != "/":
            parts.append("")
        best: tuple[tuple[int, ...], RouteMatch] | None = None
        for compiled in self._routes:
            if compiled.route.method not in {method.upper(), "ANY"}:
                continue
            params = _match(compiled, parts)
            if params is None:
                continue
            rank = (
                *(kind for kind, _ in compiled.segments),
                _GREEDY + 1,  # a shorter pattern ranks after a longer one with the same prefix
                1 if compiled.route.method == "ANY" else 0,
            )
            if best is None or rank < best[0]:
                best = (rank, RouteMatch(compiled.route, params))
        if best is not None:
            return best[1]
        if self._default is not None:
            return RouteMatch(self._default, {})
        return None

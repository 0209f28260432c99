"""Route matching that tries only the routes a path can match, in Pyramid's order.

Pyramid's ``RoutesMapper`` tries every route's regex in the order they were added until
one matches: a service's last routes (``/v1/tracking/{number}`` is the twentieth in
shipping, after the platform's) paid a Python call and a regex per route before them on
every request. A route's pattern starts with a literal prefix (all of it up to its first
``{name}`` or ``*star``), which its regex requires the path to start with. So for a path,
only routes whose prefix is compatible with the path's first two segments can match; this
mapper keeps those candidates per such key (computed once, for a bounded number of keys)
and runs Pyramid's own loop over them: the same route wins, with the same predicates.
tests/shared/test_routing.py compares it with Pyramid's mapper on every route of every
service.
"""

from __future__ import annotations

import threading
from typing import Any

from pyramid.exceptions import URLDecodeError
from pyramid.urldispatch import RoutesMapper, old_route_re, route_re, star_at_end, update_pattern

#: Keys (a path's first two segments) whose candidates are kept; others are computed per
#: request (a client making up paths must not grow the mapper).
MAX_KEYS = 512


def literal_prefix(pattern: str) -> str:
    """What a path must start with to match ``pattern`` (as ``_compile_route`` reads it)."""
    if old_route_re.search(pattern) and not route_re.search(pattern):
        pattern = old_route_re.sub(update_pattern, pattern)
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    if star_at_end.search(pattern):
        pattern = pattern.rsplit("*", 1)[0]
    return str(route_re.split(pattern)[0])


def path_key(path: str) -> str:
    """The path up to its third ``/`` (``/v1/tracking`` for ``/v1/tracking/DP9``)."""
    first = path.find("/", 1)
    second = path.find("/", first + 1) if first != -1 else -1
    return path if second == -1 else path[:second]


class IndexedRoutesMapper(RoutesMapper):  # type: ignore[misc]  # Pyramid ships no type hints
    def __init__(self) -> None:
        super().__init__()
        self._candidates: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def connect(self, name: str, pattern: str, *args: Any, **kwargs: Any) -> Any:
        route = super().connect(name, pattern, *args, **kwargs)
        route.literal_prefix = literal_prefix(pattern)
        with self._lock:
            self._candidates = {}  # routes are added at configuration time only
        return route

    def candidates(self, key: str) -> list[Any]:
        """The routes, in order, that may match a path starting with ``key`` (then ``/`` or
        nothing): a route whose prefix is not a prefix of the path cannot match it."""
        found = self._candidates.get(key)
        if found is None:
            found = [
                route
                for route in self.routelist
                if key.startswith(route.literal_prefix) or route.literal_prefix.startswith(key)
            ]
            if len(self._candidates) < MAX_KEYS:
                with self._lock:
                    self._candidates[key] = found
        return found

    def __call__(self, request: Any) -> dict[str, Any]:
        # Pyramid's RoutesMapper.__call__, over the candidates instead of every route.
        try:
            path = request.path_info or "/"
        except KeyError:
            path = "/"
        except UnicodeDecodeError as e:
            raise URLDecodeError(e.encoding, e.object, e.start, e.end, e.reason) from e
        for route in self.candidates(path_key(path)):
            match = route.match(path)
            if match is not None:
                preds = route.predicates
                info = {"match": match, "route": route}
                if preds and not all(p(info, request) for p in preds):
                    continue
                return info
        return {"route": None, "match": None}

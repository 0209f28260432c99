"""Fast JSON and problem+json responses (orjson: the renderer is on every hot path)."""

from __future__ import annotations

from typing import Any

import orjson
from pyramid.response import Response

from ..errors import Problem

PROBLEM_JSON = "application/problem+json"


def _default(value: Any) -> Any:
    # Decimal, sets and similar; datetimes and UUIDs orjson handles natively.
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)


class ApiResponse(Response):  # type: ignore[misc]  # pyramid (WebOb) ships no types: Response is Any
    """A response whose ``Location`` stays as the view wrote it.

    WebOb turns a relative ``Location`` into an absolute URL built from the
    request's ``Host`` header — a value any client chooses, which a stored
    idempotent replay would then hand to other callers. Relative references
    are valid (RFC 9110 §10.2.2) and right behind any proxy, so they are kept.
    """

    def _abs_headerlist(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        return list(self.headerlist)


#: The headers a response holds once built with a body and a content type.
_BUILT = frozenset({"content-type", "content-length"})


def _add_headers(response: Response, headers: dict[str, str]) -> None:
    """``response.headers.update(headers)`` for a response just built.

    It holds only Content-Type and Content-Length, so any other name (an ETag, a
    Location) is appended as it is: ``update`` goes through the ABC's loop and a
    scan of the whole header list per name.
    """
    headerlist = response.headerlist
    for name, value in headers.items():
        if name.lower() in _BUILT:
            response.headers[name] = value
        else:
            headerlist.append((name, value))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = ApiResponse(body=dumps(body), status=status, content_type="application/json")
    if headers:
        _add_headers(response, headers)
    return response


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    response = ApiResponse(
        body=dumps(problem.body(instance)),
        status=problem.status,
        content_type=PROBLEM_JSON,
        charset=None,
    )
    if problem.headers:
        _add_headers(response, problem.headers)
    return response

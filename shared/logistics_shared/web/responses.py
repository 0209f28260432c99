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


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(body=dumps(body), status=status, content_type="application/json")
    if headers:
        response.headers.update(headers)
    return response


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    response = Response(
        body=dumps(problem.body(instance)),
        status=problem.status,
        content_type=PROBLEM_JSON,
        charset=None,
    )
    response.headers.update(problem.headers)
    return response

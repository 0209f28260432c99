"""``@endpoint``: one declaration gives a view its route, method, permission,
input and output schemas — and the OpenAPI document reads the same declaration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from marshmallow import Schema, ValidationError
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from .. import errors
from ..errors import pointer_errors
from .body import parse_json, read_raw
from .dumping import compile_dump
from .responses import json_response


@dataclass
class Reply:
    """What a view returns when it needs a status or headers besides the body."""

    body: Any
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiMeta:
    route: str
    method: str
    permission: str
    summary: str
    tags: tuple[str, ...]
    body: type[Schema] | None
    query: type[Schema] | None
    response: type[Schema] | None
    many: bool
    status: int
    problems: tuple[int, ...]
    idempotent: bool
    etag: bool
    description: str = ""


def load(schema: Schema, data: Any, *, location: str = "body") -> Any:
    try:
        return schema.load(data)
    except ValidationError as exc:
        found = pointer_errors(exc.messages)
        if location != "body":
            for item in found:
                item["in"] = location
        raise errors.ValidationFailed(found) from None


def query_dict(request: Request) -> dict[str, str]:
    # A repeated parameter is ambiguous: the last value wins, as in most frameworks.
    return dict(request.GET.items())


def endpoint(
    route: str,
    method: str,
    *,
    permission: str,
    summary: str,
    tags: tuple[str, ...] = (),
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    response: type[Schema] | None = None,
    many: bool = False,
    status: int = 200,
    problems: tuple[int, ...] = (),
    idempotent: bool = False,
    etag: bool = False,
    guard: Callable[[Request, bytes], None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a JSON endpoint.

    The view is called as ``view(request, body=..., query=...)`` with the
    loaded inputs it declared, and returns data for ``response`` (dumped
    through it, so only allow-listed fields leave), a :class:`Reply`, or a
    :class:`~pyramid.response.Response`.

    ``guard(request, raw_body)`` runs on the raw bytes before they are parsed
    (an HMAC signature check: unsigned input must never reach the parser).
    """
    body_schema = body() if body else None
    query_schema = query() if query else None
    response_schema = response(many=many) if response else None
    dump = compile_dump(response_schema) if response_schema is not None else None

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        meta = ApiMeta(
            route=route,
            method=method,
            permission=permission,
            summary=summary,
            tags=tags,
            body=body,
            query=query,
            response=response,
            many=many,
            status=status,
            problems=problems,
            idempotent=idempotent,
            etag=etag,
            description=(view.__doc__ or "").strip(),
        )

        @functools.wraps(view)
        def wrapper(request: Request) -> Response:
            kwargs: dict[str, Any] = {}
            if query_schema is not None:
                kwargs["query"] = load(query_schema, query_dict(request), location="query")
            elif request.GET:
                raise errors.ValidationFailed(
                    [
                        {"pointer": f"/{name}", "in": "query", "detail": "Unknown parameter."}
                        for name in request.GET
                    ]
                )
            if body_schema is not None:
                raw = read_raw(request, request.registry["logistics.settings"].max_body_bytes)
                if guard is not None:
                    guard(request, raw)
                kwargs["body"] = load(body_schema, parse_json(raw))
            if idempotent:
                from .idempotency import run_idempotent

                return run_idempotent(request, lambda: _respond(view(request, **kwargs)))
            return _respond(view(request, **kwargs))

        def _respond(result: Any) -> Response:
            if isinstance(result, Response):
                return result
            reply = result if isinstance(result, Reply) else Reply(result)
            data = reply.body
            if dump is not None and data is not None:
                data = dump(data)
            return json_response(data, status=reply.status or status, headers=reply.headers)

        wrapper.__api__ = meta  # type: ignore[attr-defined]
        return wrapper

    return decorator


def add_endpoints(config: Configurator, module: ModuleType) -> None:
    """Register every ``@endpoint`` of ``module`` (explicit, no venusian scan)."""
    for value in vars(module).values():
        meta: ApiMeta | None = getattr(value, "__api__", None)
        if meta is not None and getattr(value, "__module__", None) == module.__name__:
            config.add_view(
                value,
                route_name=meta.route,
                request_method=meta.method,
                permission=meta.permission,
            )

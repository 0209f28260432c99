"""``@endpoint``: one declaration gives a view its route, method, permission,
input and output schemas — and the OpenAPI document reads the same declaration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from marshmallow import RAISE, Schema, ValidationError
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from .. import errors
from ..errors import pointer_errors
from .body import parse_json, read_optional_raw, read_raw
from .dumping import compile_dump
from .links import is_page, next_link
from .loading import Load, compile_load
from .query import query_dict, query_pairs
from .ratelimit import limit_webhook_sender
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
    #: Statuses besides the usual ones, or ``(status, problem schema)`` for extensions.
    problems: tuple[int | tuple[int, type[Schema]], ...]
    idempotent: bool
    etag: bool
    description: str = ""
    #: An action (``POST .../{id}/cancel``): its body is optional, see :func:`endpoint`.
    action: bool = False
    #: A request body the API accepts, shown in the docs (a test posts every one).
    example: Any = None
    #: JSON pointers of body/query fields naming something that must exist (a 422 when
    #: it does not, or is not the caller's): state-dependent, not a schema rule.
    references: tuple[str, ...] = ()
    #: JSON schemas of path parameters beyond the shared ones (``id``, ``sku``, ``code``).
    path_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Extra OpenAPI header parameters (e.g. a webhook's signature headers).
    headers: tuple[dict[str, Any], ...] = ()
    #: Non-JSON success bodies: media type -> description (a label's PDF or ZPL).
    produces: dict[str, str] = field(default_factory=dict)
    #: Security schemes (all required) instead of the bearer token.
    security: tuple[str, ...] = ()
    #: Rules spanning fields, which JSON Schema cannot state: pointer (``*`` for any
    #: segment) -> the rule, documented in the operation.
    cross_field: dict[str, str] = field(default_factory=dict)
    #: The route of the resource a creating endpoint makes: the document links this
    #: operation's answer to the operations there (its path parameters from the body).
    creates: str | None = None
    #: The path parameter naming a signed webhook's sender (``carrier``): the request is
    #: rate-limited per sender (class ``webhook``) once ``guard`` has verified it.
    webhook_sender: str | None = None
    #: A file upload instead of a JSON body: media type -> OpenAPI schema. The view reads
    #: the body itself (``logistics_shared.web.upload``); the endpoint reads none.
    upload: dict[str, Any] = field(default_factory=dict)
    #: Other media types of the success body besides JSON, chosen by ``Accept``
    #: (the view negotiates): media type -> description.
    alternatives: dict[str, str] = field(default_factory=dict)


def load(schema: Schema | Load, data: Any, *, location: str = "body") -> Any:
    """``schema.load(data)`` (or a :func:`~.loading.compile_load` function's), errors as a 422."""
    try:
        return schema.load(data) if isinstance(schema, Schema) else schema(data)
    except ValidationError as exc:
        found = pointer_errors(exc.messages)
        if location != "body":
            for item in found:
                item["in"] = location
        raise errors.ValidationFailed(found) from None


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
    problems: tuple[int | tuple[int, type[Schema]], ...] = (),
    idempotent: bool = False,
    etag: bool = False,
    action: bool = False,
    example: Any = None,
    references: tuple[str, ...] = (),
    path_parameters: dict[str, dict[str, Any]] | None = None,
    headers: tuple[dict[str, Any], ...] = (),
    produces: dict[str, str] | None = None,
    security: tuple[str, ...] = (),
    cross_field: dict[str, str] | None = None,
    creates: str | None = None,
    guard: Callable[[Request, bytes], None] | None = None,
    sealed: bool = False,
    webhook_sender: str | None = None,
    upload: dict[str, Any] | None = None,
    alternatives: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a JSON endpoint.

    The view is called as ``view(request, body=..., query=...)`` with the
    loaded inputs it declared, and returns data for ``response`` (dumped
    through it, so only allow-listed fields leave), a :class:`Reply`, or a
    :class:`~pyramid.response.Response`.

    ``guard(request, raw_body)`` runs on the raw bytes before they are parsed
    (an HMAC signature check: unsigned input must never reach the parser).

    ``action=True`` marks an action on a resource (``POST /v1/shipments/{id}/cancel``).
    One rule for every action of every service: the body is optional — no body
    at all is the same as ``{}`` — and a body that is sent is read like any other
    (JSON only, strict schema: unknown fields are a 422). An action without
    parameters declares none and gets :class:`NoParameters`, so it never silently
    ignores what a client sent. A write that is not an action must declare a body.

    ``webhook_sender`` names the path parameter that identifies a signed webhook's sender:
    such a request is counted against that sender's rate limit after ``guard`` accepted its
    signature (web/ratelimit.py), instead of against a caller by token or address.
    """
    if webhook_sender is not None and guard is None:
        raise TypeError(f"{method} {route}: webhook_sender needs a guard that verifies the sender")
    if action and body is None:
        body = NoParameters
    if method in {"POST", "PUT", "PATCH"} and body is None and not upload:
        raise TypeError(f"{method} {route}: declare a body schema, an upload, or action=True for an action")
    body_schema = body() if body else None
    # A query string is read on every GET: loaded by a plain loop over the schema's fields.
    query_schema = compile_load(query()) if query else None
    response_schema = response(many=many) if response else None
    dump = compile_dump(response_schema) if response_schema is not None else None
    # A list page (``{items, next_cursor}``) also names its next page in a Link header.
    paged = response_schema is not None and not many and "next_cursor" in response_schema.fields

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
            action=action,
            example=example,
            references=references,
            path_parameters=path_parameters or {},
            headers=headers,
            produces=produces or {},
            security=security,
            cross_field=cross_field or {},
            creates=creates,
            webhook_sender=webhook_sender,
            upload=upload or {},
            alternatives=alternatives or {},
        )

        @functools.wraps(view)
        def wrapper(request: Request) -> Response:
            kwargs: dict[str, Any] = {}
            if query_schema is not None:
                kwargs["query"] = load(query_schema, query_dict(request), location="query")
            else:
                unknown = dict(query_pairs(request))
                if unknown:
                    raise errors.ValidationFailed(
                        [
                            {"pointer": f"/{name}", "in": "query", "detail": "Unknown parameter."}
                            for name in unknown
                        ]
                    )
            if body_schema is not None:
                max_bytes = request.registry["logistics.settings"].max_body_bytes
                raw = read_optional_raw(request, max_bytes) if action else read_raw(request, max_bytes)
                if guard is not None:
                    guard(request, raw)
                    if webhook_sender is not None:
                        limit_webhook_sender(request, request.matchdict[webhook_sender])
                loaded = load(body_schema, parse_json(raw) if raw else {})
                if body is not NoParameters:
                    kwargs["body"] = loaded
            if idempotent:
                from .idempotency import run_idempotent

                return run_idempotent(
                    request, lambda: _respond(request, view(request, **kwargs)), sealed=sealed
                )
            return _respond(request, view(request, **kwargs))

        def _respond(request: Request, result: Any) -> Response:
            if isinstance(result, Response):
                return result
            reply = result if isinstance(result, Reply) else Reply(result)
            data = reply.body
            headers = reply.headers
            if paged and is_page(data) and data["next_cursor"]:
                headers = {**headers, "Link": next_link(request, data["next_cursor"])}
            if dump is not None and data is not None:
                data = dump(data)
            return json_response(data, status=reply.status or status, headers=headers)

        wrapper.__api__ = meta  # type: ignore[attr-defined]
        return wrapper

    return decorator


class NoParameters(Schema):
    """The body of an action that takes no parameters: nothing, or ``{}``."""

    class Meta:
        unknown = RAISE


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

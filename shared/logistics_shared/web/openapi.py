"""``/openapi.json`` built with apispec from the ``@endpoint`` declarations.

The ``/docs`` page that renders it lives in :mod:`logistics_shared.web.docs`.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from pyramid.config import Configurator
from pyramid.interfaces import IRoutesMapper
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from ..schemas import (
    CODE_PATTERN_ECMA,
    SKU_PATTERN_ECMA,
    ConflictProblemSchema,
    MalformedProblemSchema,
    PreconditionProblemSchema,
    ProblemSchema,
    ValidationProblemSchema,
)
from .endpoint import ApiMeta
from .idempotency import KEY_PATTERN_ECMA
from .links import LINK_HEADER
from .responses import json_response

_PLACEHOLDER = re.compile(r"\{([^}:]+)(:[^}]*)?\}")
_STATUS_TEXT = {
    400: "The request cannot be read: malformed JSON, a repeated member name, a query that is not UTF-8",
    401: "Missing or invalid credentials",
    403: "The role does not allow this",
    404: "Not found (or not yours)",
    409: "Conflict with the current state",
    412: "If-Match does not match the current ETag",
    413: "Body too large",
    415: "Body is not of a media type this operation accepts",
    422: "Validation failed",
    429: "Rate limited: the caller spent its quota for this class of route; retry after Retry-After s",
    503: "Database unavailable or not migrated; retry after Retry-After seconds",
}
#: The problem schema of each status, unless the endpoint names its own.
_PROBLEM_SCHEMAS: dict[int, type] = {
    400: MalformedProblemSchema,
    409: ConflictProblemSchema,
    412: PreconditionProblemSchema,
    422: ValidationProblemSchema,
}
#: Path parameters every service names the same way; an endpoint may declare others.
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "format": "uuid"},
    "sku": {"type": "string", "pattern": SKU_PATTERN_ECMA},
    "code": {"type": "string", "pattern": CODE_PATTERN_ECMA},
    "carrier": {"type": "string", "pattern": CODE_PATTERN_ECMA},
    "service": {"type": "string", "pattern": CODE_PATTERN_ECMA},
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


#: draft-ietf-httpapi-ratelimit-headers-09 (web/ratelimit.py): on every response of a limited
#: operation (except when the limiter could not count it: its storage down, it fails open).
_RATE_LIMIT_HEADER_COMPONENTS = {
    "RateLimit-Policy": {
        "description": "The quota policy (draft-ietf-httpapi-ratelimit-headers-09): the route class, "
        "its quota q for this caller and its window w in seconds, e.g. "
        '"read";q=1200;w=60.',
        "schema": {"type": "string", "pattern": r'^"[a-z]+";q=[0-9]+;w=[0-9]+$'},
    },
    "RateLimit": {
        "description": "What is left of that quota (draft-ietf-httpapi-ratelimit-headers-09): "
        'remaining requests r and seconds t until the window resets, e.g. "read";r=42;t=17.',
        "schema": {"type": "string", "pattern": r'^"[a-z]+";r=[0-9]+;t=[0-9]+$'},
    },
}


def _rate_limit_headers() -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_LIMIT_HEADER_COMPONENTS}


def _schema_name(resolver_schema: Any) -> str:
    cls = resolver_schema if isinstance(resolver_schema, type) else type(resolver_schema)
    name = cls.__name__
    return name[:-6] if name.endswith("Schema") and len(name) > 6 else name


def build_spec(registry: Registry) -> dict[str, Any]:
    service = registry["logistics.service"]
    spec = APISpec(
        title=f"Logistics {service.name} API",
        version=service.version,
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={"description": service.description},
        # Relative: the document is right wherever it is served from (a replica, the front door).
        servers=[{"url": "/", "description": f"This {service.name} service"}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for name, scheme in service.security_schemes.items():
        spec.components.security_scheme(name, dict(scheme))
    spec.components.schema("Problem", schema=ProblemSchema)
    from .ratelimit import LIMITER

    limited = registry.get(LIMITER) is not None
    if limited:
        for name, header in _RATE_LIMIT_HEADER_COMPONENTS.items():
            spec.components.header(name, header)
    mapper = registry.getUtility(IRoutesMapper)
    patterns = {route.name: route.pattern for route in mapper.get_routes()}
    operations: dict[str, dict[str, Any]] = {}
    metas: list[ApiMeta] = []
    for item in registry.introspector.get_category("views") or []:
        view = item["introspectable"]["callable"]
        meta: ApiMeta | None = getattr(view, "__api__", None)
        if meta is None:
            continue
        metas.append(meta)
        path = _PLACEHOLDER.sub(r"{\1}", patterns[meta.route])
        operations.setdefault(path, {})[meta.method.lower()] = _operation(meta, path, limited=limited)
    _add_links(metas, patterns, operations)
    for path in sorted(operations):
        spec.path(path=path, operations=operations[path])
    hooks = _webhooks(spec, registry)
    document = spec.to_dict()
    _merge_schema_extras(spec, document)
    if hooks:
        document["webhooks"] = hooks
    return document


def _webhooks(spec: APISpec, registry: Registry) -> dict[str, Any]:
    """OpenAPI 3.1 ``webhooks``: what a subscribed endpoint receives, one entry per public
    event, with the Standard Webhooks headers."""
    platform = registry.get("logistics.platform_tables")
    if platform is None or platform.webhooks is None:
        return {}
    from ..webhooks.catalogue import PING_EVENT, Catalogue

    headers = [
        {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "The event's id: the same on every retry; de-duplicate by it."},
        {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "Unix seconds when this attempt was signed."},
        {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
         "description": 'Space-separated "v1,<base64 HMAC-SHA256>" of "<id>.<timestamp>.<body>" '
         "with the endpoint's secret (two during a rotation's grace period)."},
    ]  # fmt: skip
    hooks: dict[str, Any] = {}
    registered: set[str] = set()
    catalogue = Catalogue(registry["logistics.service"].name)
    for event in (*catalogue.events, PING_EVENT):
        name = f"Webhook{event.schema.__name__}"
        if name not in registered:  # events of one shape share their schema
            spec.components.schema(name, schema=event.schema)
            registered.add(name)
        payload = {
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": event.type},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {"$ref": f"#/components/schemas/{name}"},
            },
        }
        hooks[event.type] = {
            "post": {
                "summary": event.description,
                "description": f"Payload version {event.version}. Sent to the endpoints subscribed to it.",
                "parameters": headers,
                "requestBody": {"required": True, "content": {"application/json": {"schema": payload}}},
                "responses": {"2XX": {"description": "Received; any other answer is retried."}},
            }
        }
    return hooks


def _add_links(metas: list[ApiMeta], patterns: dict[str, str], operations: dict[str, Any]) -> None:
    """OpenAPI links from each creating operation to the operations on what it created
    (``GET /v1/shipments/{id}`` after ``POST /v1/shipments``): clients and test tools
    follow them instead of guessing which ids feed which paths."""
    for meta in metas:
        if meta.creates is None:
            continue
        target = _PLACEHOLDER.sub(r"{\1}", patterns[meta.creates])
        names = re.findall(r"\{([^}]+)\}", target)
        links = {
            f"{method}_{meta.creates}": {
                "operationId": f"{method}_{meta.creates}",
                "parameters": {name: f"$response.body#/{name}" for name in names},
            }
            for method in sorted(operations.get(target, {}))
        }
        source = _PLACEHOLDER.sub(r"{\1}", patterns[meta.route])
        operations[source][meta.method.lower()]["responses"][str(meta.status)]["links"] = links


def _merge_schema_extras(spec: APISpec, document: dict[str, Any]) -> None:
    """Schema-level rules apispec cannot derive (``minProperties``, ``oneOf``), declared
    on the marshmallow class as ``__openapi__`` next to the validator that enforces them."""
    plugin = next(p for p in spec.plugins if isinstance(p, MarshmallowPlugin))
    components = document.get("components", {}).get("schemas", {})
    assert plugin.converter is not None  # MarshmallowPlugin.init_spec made it with the APISpec
    for key, name in plugin.converter.refs.items():
        schema_class = key[0] if isinstance(key, tuple) else type(key)
        extras = getattr(schema_class, "__openapi__", None)
        if extras and name in components:
            components[name].update(extras)


def _parameters(meta: ApiMeta, path: str) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for name in re.findall(r"\{([^}]+)\}", path):
        schema = meta.path_parameters.get(name) or _PATH_PARAMETERS.get(name) or {"type": "string"}
        parameters.append({"in": "path", "name": name, "required": True, "schema": schema})
    if meta.query is not None:
        parameters.append({"in": "query", "schema": meta.query})
    if meta.idempotent:
        parameters.append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "pattern": KEY_PATTERN_ECMA},
                "description": "Retries with the same key replay the first response "
                "(1-255 visible ASCII characters, spaces inside).",
            }
        )
    if meta.etag:
        parameters.append(
            {
                "in": "header",
                "name": "If-Match",
                "required": False,
                # Any string: one that is not the current ETag (stale, or made up) is a 412,
                # which is the state of the resource, not the syntax of the header.
                "schema": {"type": "string"},
                "description": 'The ETag of the version you read (e.g. "3"), or *; anything else is a 412.',
            }
        )
    parameters.extend(meta.headers)
    return parameters


def _success(meta: ApiMeta) -> dict[str, Any]:
    words = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}
    success: dict[str, Any] = {"description": words.get(meta.status, "Success")}
    if meta.produces:
        success["content"] = {
            media: {"schema": {"type": "string", "contentMediaType": media}, "description": text}
            for media, text in meta.produces.items()
        }
    elif meta.response is not None:
        schema: Any = meta.response
        if meta.many:
            schema = {"type": "array", "items": meta.response}
        success["content"] = {"application/json": {"schema": schema}}
        if not meta.many and "next_cursor" in meta.response().fields:
            # A copy: the rate limiter adds its headers to this dict (a shared one would leak them
            # into every later document, a limiter switched off included).
            success["headers"] = dict(LINK_HEADER)
        for media, text in meta.alternatives.items():
            success["content"][media] = {
                "schema": {"type": "string", "contentMediaType": media},
                "description": text,
            }
    return success


def _operation(meta: ApiMeta, path: str, *, limited: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": meta.summary,
        "tags": list(meta.tags),
        "operationId": f"{meta.method.lower()}_{meta.route}",
        # One requirement naming every scheme: all of them must be present (the
        # carrier webhook's signature and timestamp headers), else the bearer token.
        "security": [{name: [] for name in meta.security or ("bearer",)}],
        "x-permission": meta.permission,
        "responses": {},
    }
    description = meta.description
    if meta.cross_field:
        rules = "\n".join(f"- `{pointer}`: {rule}" for pointer, rule in meta.cross_field.items())
        description = f"{description}\n\nRules across fields (a 422 at the pointer):\n{rules}".strip()
    if description:
        operation["description"] = description
    parameters = _parameters(meta, path)
    if parameters:
        operation["parameters"] = parameters
    if meta.body is not None:
        media: dict[str, Any] = {"schema": meta.body}
        if meta.example is not None:
            media["example"] = meta.example
        operation["requestBody"] = {
            # An action's body is optional: nothing at all is the same as {}.
            "required": not meta.action,
            "content": {"application/json": media},
        }
    if meta.upload:
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": schema} for media, schema in meta.upload.items()},
        }
    references = list(meta.references)
    if meta.query is not None and "cursor" in meta.query().fields:
        references.append("/cursor")  # a cursor must be one this API issued
    if meta.idempotent:
        references.append("/Idempotency-Key")  # a key already used with another body
    if references:
        # Fields whose 422 depends on what exists (an unknown or foreign reference),
        # not on a rule a schema can state; worded the same either way.
        operation["x-state-dependent"] = references
    if meta.cross_field:
        # Rules across fields that JSON Schema cannot state; the description says them.
        operation["x-cross-field-rules"] = dict(meta.cross_field)
    operation["responses"][str(meta.status)] = _success(meta)
    declared = {code if isinstance(code, int) else code[0]: code for code in meta.problems}
    # Any request can be unreadable (400: a query that is not UTF-8), carry an unknown
    # query parameter (422), lack credentials (401) or meet a database that is down (503).
    codes = {400, 401, 422, 503, *declared}
    if "{" in path:
        codes.add(404)  # a path parameter can always name nothing (or something not yours)
    if meta.permission != NO_PERMISSION_REQUIRED:
        codes.add(403)
    if meta.body is not None or meta.upload:
        codes |= {413, 415}
    if meta.etag:
        codes.add(412)
    if limited:
        codes.add(429)  # every operation is limited (only the public ones are not: no @endpoint)
    for code in sorted(codes):
        schema = _PROBLEM_SCHEMAS.get(code, ProblemSchema)
        chosen = declared.get(code)
        if isinstance(chosen, tuple):
            schema = chosen[1]
        response: dict[str, Any] = {
            "description": _STATUS_TEXT.get(code, "Error"),
            "content": {"application/problem+json": {"schema": schema}},
        }
        if code in (429, 503):
            response["headers"] = dict(_RETRY_AFTER)
        if limited:
            response.setdefault("headers", {}).update(_rate_limit_headers())
        operation["responses"][str(code)] = response
    if limited:
        operation["responses"][str(meta.status)].setdefault("headers", {}).update(_rate_limit_headers())
    return operation


def openapi_view(request: Request) -> Response:
    cached = request.registry.get("logistics.openapi")
    if cached is None:
        cached = request.registry["logistics.openapi"] = build_spec(request.registry)
    return json_response(cached)


def includeme(config: Configurator) -> None:
    public = {"permission": NO_PERMISSION_REQUIRED, "request_method": ("GET", "HEAD")}
    config.add_route("openapi", "/openapi.json")
    config.add_view(openapi_view, route_name="openapi", **public)

"""``/openapi.json`` built with apispec from the ``@endpoint`` declarations, and
``/docs``: Swagger UI served from the packaged swagger-ui-bundle (no CDN).
"""

from __future__ import annotations

import re
from typing import Any

import swagger_ui_bundle
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from pyramid.config import Configurator
from pyramid.interfaces import IRoutesMapper
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from ..schemas import ProblemSchema
from .endpoint import ApiMeta
from .responses import json_response

_PLACEHOLDER = re.compile(r"\{([^}:]+)(:[^}]*)?\}")
_STATUS_TEXT = {
    400: "Malformed JSON",
    401: "Missing or invalid bearer token",
    403: "The role does not allow this",
    404: "Not found (or not yours)",
    405: "Method not allowed",
    409: "Conflict with the current state",
    412: "If-Match does not match the current ETag",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Validation failed",
    503: "Database unavailable",
}


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
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Problem", schema=ProblemSchema)
    mapper = registry.getUtility(IRoutesMapper)
    patterns = {route.name: route.pattern for route in mapper.get_routes()}
    operations: dict[str, dict[str, Any]] = {}
    for item in registry.introspector.get_category("views") or []:
        view = item["introspectable"]["callable"]
        meta: ApiMeta | None = getattr(view, "__api__", None)
        if meta is None:
            continue
        path = _PLACEHOLDER.sub(r"{\1}", patterns[meta.route])
        operations.setdefault(path, {})[meta.method.lower()] = _operation(meta, path)
    for path in sorted(operations):
        spec.path(path=path, operations=operations[path])
    return spec.to_dict()


def _operation(meta: ApiMeta, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": meta.summary,
        "tags": list(meta.tags),
        "operationId": f"{meta.method.lower()}_{meta.route}",
        "security": [{"bearer": []}],
        "x-permission": meta.permission,
        "responses": {},
    }
    if meta.description:
        operation["description"] = meta.description
    parameters: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{([^}]+)\}", path)
    ]
    if meta.query is not None:
        parameters.append({"in": "query", "schema": meta.query})
    if meta.idempotent:
        parameters.append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Retries with the same key replay the first response.",
            }
        )
    if meta.etag:
        parameters.append(
            {"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"}}
        )
    if parameters:
        operation["parameters"] = parameters
    if meta.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": meta.body}},
        }
    success: dict[str, Any] = {"description": "OK" if meta.status == 200 else "Created"}
    if meta.response is not None:
        schema: Any = meta.response
        if meta.many:
            schema = {"type": "array", "items": meta.response}
        success["content"] = {"application/json": {"schema": schema}}
    operation["responses"][str(meta.status)] = success
    codes = {401, 403, 503, *meta.problems}
    if meta.body is not None:
        codes |= {400, 413, 415, 422}
    if meta.query is not None:
        codes.add(422)
    if meta.etag:
        codes.add(412)
    for code in sorted(codes):
        operation["responses"][str(code)] = {
            "description": _STATUS_TEXT.get(code, "Error"),
            "content": {"application/problem+json": {"schema": "Problem"}},
        }
    return operation


def openapi_view(request: Request) -> Response:
    cached = request.registry.get("logistics.openapi")
    if cached is None:
        cached = request.registry["logistics.openapi"] = build_spec(request.registry)
    return json_response(cached)


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{static}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-ui-standalone-preset.js"></script>
<script src="{static}/init.js"></script>
</body></html>"""


def docs_view(request: Request) -> Response:
    # Relative to /docs, so the page also works behind a path-prefix proxy.
    static = "docs/static/swagger"
    title = f"Logistics {request.registry['logistics.service'].name} API"
    return Response(_DOCS_PAGE.format(title=title, static=static), content_type="text/html")


def docs_init_view(request: Request) -> Response:
    # A file, not an inline script, so a strict Content-Security-Policy works.
    # Relative to the /docs page, so it also resolves behind a path-prefix proxy.
    url = "openapi.json"
    script = (
        f"window.ui = SwaggerUIBundle({{url: '{url}', dom_id: '#swagger-ui', "
        "presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], "
        "layout: 'StandaloneLayout', persistAuthorization: true});"
    )
    return Response(script, content_type="application/javascript")


def includeme(config: Configurator) -> None:
    public = {"permission": NO_PERMISSION_REQUIRED, "request_method": ("GET", "HEAD")}
    config.add_route("openapi", "/openapi.json")
    config.add_view(openapi_view, route_name="openapi", **public)
    config.add_route("docs", "/docs")
    config.add_view(docs_view, route_name="docs", **public)
    config.add_route("docs_init", "/docs/static/swagger/init.js")
    config.add_view(docs_init_view, route_name="docs_init", **public)
    config.add_static_view(
        name="docs/static/swagger",
        path=str(swagger_ui_bundle.swagger_ui_path),
        permission=NO_PERMISSION_REQUIRED,
        cache_max_age=86400,
    )

"""``/docs``: Swagger UI 5 served from the static files of the ``swagger-ui-py``
package (offline, no CDN), reading the service's ``/openapi.json``.

Swagger UI 5 is needed because the spec declares OpenAPI 3.1, which Swagger UI 4
cannot render. Every URL the page uses is relative to ``/docs``, so the page also
works behind a proxy that mounts the service under a path prefix.
"""

from __future__ import annotations

import html
from pathlib import Path

import swagger_ui
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.request import Request
from pyramid.response import FileResponse, Response
from pyramid.security import NO_PERMISSION_REQUIRED

#: Where the package keeps the Swagger UI distribution (only this folder is used,
#: not the package's own Python helpers).
SWAGGER_STATIC = Path(swagger_ui.__file__).resolve().parent / "static"

#: URL folder of the assets, relative to the /docs page.
STATIC_PREFIX = "docs/static/swagger"

#: The only files served, with explicit types: guessing them from ``mimetypes``
#: depends on the machine (Python 3.11 without /etc/mime.types says
#: ``application/javascript`` and WebOb then adds no charset). The folder also holds
#: Swagger Editor bundles, source maps and a petstore initializer we do not serve.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

#: Named like the route ``config.add_static_view`` used to create, so the lists of
#: public routes (web/ops.py PUBLIC_ROUTES, the route-permission test) stay valid.
STATIC_ROUTE = f"__{STATIC_PREFIX}/"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" sizes="32x32" href="{static}/favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="{static}/favicon-16x16.png">
<link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-ui-standalone-preset.js"></script>
<script src="{static}/init.js"></script>
</body>
</html>
"""

# A file, not an inline script, so a strict Content-Security-Policy (no
# 'unsafe-inline') can serve the page. ``url`` is resolved against the /docs page,
# so it also finds openapi.json behind a path-prefix proxy. persistAuthorization
# keeps the bearer token across reloads (in the browser's localStorage).
_INIT_JS = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  layout: "StandaloneLayout",
  persistAuthorization: true
});
"""

#: A day: the files change only with the package version.
CACHE_MAX_AGE = 86400


def docs_view(request: Request) -> Response:
    title = html.escape(f"Logistics {request.registry['logistics.service'].name} API")
    return Response(
        _PAGE.format(title=title, static=STATIC_PREFIX), content_type="text/html", charset="utf-8"
    )


def docs_init_view(request: Request) -> Response:
    # ``charset`` passed explicitly: a str body needs one, and "text/javascript"
    # alone would be refused (the old 500).
    return Response(_INIT_JS, content_type="text/javascript", charset="utf-8", cache_control="no-cache")


def docs_asset_view(request: Request) -> Response:
    # Only the allow-listed names; a subpath can therefore never leave the folder.
    name = "/".join(request.subpath)
    content_type = ASSETS.get(name)
    if content_type is None:
        raise HTTPNotFound()
    return FileResponse(
        str(SWAGGER_STATIC / name), request, cache_max_age=CACHE_MAX_AGE, content_type=content_type
    )


def includeme(config: Configurator) -> None:
    public = {"permission": NO_PERMISSION_REQUIRED, "request_method": ("GET", "HEAD")}
    config.add_route("docs", "/docs")
    config.add_view(docs_view, route_name="docs", **public)
    # Before the asset route: routes match in the order they are added.
    config.add_route("docs_init", f"/{STATIC_PREFIX}/init.js")
    config.add_view(docs_init_view, route_name="docs_init", **public)
    config.add_route(STATIC_ROUTE, f"/{STATIC_PREFIX}/*subpath")
    config.add_view(docs_asset_view, route_name=STATIC_ROUTE, **public)

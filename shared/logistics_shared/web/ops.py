"""Public operational endpoints: liveness, readiness (the database only), metrics."""

from __future__ import annotations

import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from ..logs import describe_error
from ..migrations import schema_state
from .responses import json_response

log = logging.getLogger(__name__)

#: Every route served without a token: these, plus /openapi.json and the /docs page with
#: its assets (web/openapi.py, web/docs.py).
PUBLIC_ROUTES = ("healthz", "readyz", "metrics", "openapi", "docs", "docs_init", "__docs/static/swagger/")


def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "service": request.registry["logistics.service"].name})


def readyz(request: Request) -> Response:
    # Not the broker: web replicas only write outbox rows, so a broker outage
    # must not take them out of the load balancer. The one query reads the
    # schema revision: a replica on an unmigrated database is not ready either.
    try:
        state = schema_state(request.registry["logistics.service"], request.registry["dbengine"])
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        # A public endpoint: the body names the class only; the log says what the driver said.
        log.warning("readiness: database unreachable: %s", describe_error(exc))
        body: dict[str, object] = {
            "status": "unavailable",
            "database": "unreachable",
            "error": exc.__class__.__name__,
        }
        return json_response(body, status=503, headers={"Retry-After": "5"})
    if not state.migrated:
        body = {"status": "unavailable", "database": "not migrated", "schema": state.as_dict()}
        return json_response(body, status=503, headers={"Retry-After": "5"})
    return json_response({"status": "ready", "database": "ok", "schema": state.as_dict()})


def metrics(request: Request) -> Response:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Several processes (gunicorn workers): any of them answers with the sum of all.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    else:
        registry = request.registry["logistics.metrics"].registry
    return Response(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST, charset=None)


def includeme(config: Configurator) -> None:
    for name, view in (("healthz", healthz), ("readyz", readyz), ("metrics", metrics)):
        config.add_route(name, f"/{name}")
        config.add_view(
            view, route_name=name, request_method=("GET", "HEAD"), permission=NO_PERMISSION_REQUIRED
        )

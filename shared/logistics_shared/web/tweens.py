"""One tween for request ids, Prometheus metrics and the access log.

A single tween keeps the per-request overhead to one function call and one
clock read pair on the hot path.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from .. import errors
from ..logs import request_id
from .problems import render_problem

access_log = logging.getLogger("logistics.access")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: No id, code or SKU contains a control character; a path with one (``%00``) names
#: nothing, and must not reach a query (PostgreSQL refuses NUL in text: a 500).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def observability_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    metrics = registry["logistics.metrics"]
    log_access = registry["logistics.settings"].access_log

    def tween(request: Request) -> Response:
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        # 128 random bits in hex, as uuid4().hex but without building a UUID.
        rid = incoming if _VALID_ID.match(incoming) else os.urandom(16).hex()
        token = request_id.set(rid)
        started = time.perf_counter()
        in_flight = metrics.in_flight
        in_flight.inc()
        try:
            if _CONTROL.search(request.environ.get("PATH_INFO", "")):
                response = render_problem(request, errors.NotFound("No resource at this path."))
            else:
                response = handler(request)
            elapsed = time.perf_counter() - started
            route = request.matched_route.pattern if request.matched_route else "unmatched"
            method = request.method if request.method in _METHODS else "OTHER"
            metrics.observe_request(route, method, response.status_code, elapsed)
            response.headers["X-Request-ID"] = rid
            if log_access:
                access_log.info(
                    "%s %s %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={"status": response.status_code, "ms": round(elapsed * 1000, 2)},
                )
            return response
        finally:
            in_flight.dec()
            request_id.reset(token)

    return tween

"""The health/readiness/metrics port of a non-web process (worker, dispatcher)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def health_app(readiness: Callable[[], dict[str, Any]], metrics: CollectorRegistry) -> Callable[..., Any]:
    """``/healthz`` (alive), ``/readyz`` (``readiness()["status"] == "ready"``, else 503) and
    ``/metrics``; anything else is a 404 problem."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            status, body, ctype = "200 OK", orjson.dumps({"status": "ok"}), "application/json"
        elif path == "/readyz":
            report = readiness()
            ok = report["status"] == "ready"
            status = "200 OK" if ok else "503 Service Unavailable"
            body, ctype = orjson.dumps(report), "application/json"
        elif path == "/metrics":
            status, ctype = "200 OK", CONTENT_TYPE_LATEST
            body = generate_latest(metrics)
        else:
            status, ctype = "404 Not Found", "application/problem+json"
            body = orjson.dumps({"type": "about:blank", "title": "Not Found", "status": 404})
        start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    return app

"""Every error leaves as RFC 9457 problem+json: no HTML page, no traceback, no 500
for anything a client can send.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from pyramid.config import Configurator
from pyramid.exceptions import PredicateMismatch, URLDecodeError
from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPNotFound
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .. import errors
from .responses import problem_response

log = logging.getLogger(__name__)


def _instance(request: Request) -> str:
    # Never request.path: it raises on a path that is not UTF-8, inside the error view.
    # Quote the raw WSGI (latin-1) bytes instead, as WebOb would for a valid path.
    raw = request.environ.get("SCRIPT_NAME", "") + request.environ.get("PATH_INFO", "")
    return quote(raw.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~")


def render_problem(request: Request, problem: errors.Problem) -> Response:
    return problem_response(problem, instance=_instance(request))


def undecodable_path_view(exc: URLDecodeError, request: Request) -> Response:
    return render_problem(request, errors.NotFound("No resource at this path (it is not valid UTF-8)."))


def problem_view(exc: errors.Problem, request: Request) -> Response:
    return render_problem(request, exc)


def forbidden_view(exc: HTTPForbidden, request: Request) -> Response:
    if request.identity is None:
        detail = request.environ.get("logistics.auth_error")
        return render_problem(request, errors.Unauthorized(detail))
    return render_problem(request, errors.Forbidden("Your role does not allow this operation."))


def allowed_methods(request: Request, route_name: str) -> list[str]:
    methods: list[str] = request.registry.get("logistics.route_methods", {}).get(route_name, [])
    return methods


def notfound_view(exc: HTTPNotFound, request: Request) -> Response:
    route = request.matched_route
    if isinstance(exc, PredicateMismatch) and route is not None:
        allowed = allowed_methods(request, route.name)
        if allowed and request.method not in allowed:
            return render_problem(
                request,
                errors.MethodNotAllowed(
                    f"{request.method} is not allowed here; use {', '.join(allowed)}.",
                    headers={"Allow": ", ".join(allowed)},
                ),
            )
    return render_problem(request, errors.NotFound(f"No resource at {_instance(request)}."))


def http_exception_view(exc: HTTPException, request: Request) -> Response:
    problem = errors.Problem(exc.detail or exc.title)
    problem.status, problem.title, problem.slug = exc.code, exc.title, "http-" + str(exc.code)
    return render_problem(request, problem)


def _is_connectivity(exc: Exception) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _driver_message(exc: Exception) -> str:
    # The driver's own words ("connection refused", "password authentication failed") are
    # what an operator needs; the class name alone says nothing. One line for the log.
    from ..logs import redact

    orig = getattr(exc, "orig", None) or exc
    return redact(" ".join(str(orig).split())) or orig.__class__.__name__


def _schema_problem(exc: Exception, request: Request) -> Response | None:
    """After a "no such table/column" error: a 503 naming the fix when the schema is behind.

    Checked only after such an error, so the hot path pays nothing for it. At
    its head, a missing table is a bug (a 500, on SQLite too, where the error
    is an OperationalError like a lost connection); when the check itself
    fails, the database is unreachable after all (``None``).
    """
    from ..migrations import schema_state

    spec = request.registry["logistics.service"]
    try:
        state = schema_state(spec, request.registry["dbengine"])
    except Exception as check:  # noqa: BLE001 - the database stopped answering: not a schema matter
        log.warning("database schema check failed: %s", _driver_message(check))
        return None
    if state.migrated:
        return unexpected_view(exc, request)
    log.error(
        "database not migrated (schema %s, code needs %s): %s",
        state.current,
        state.head,
        _driver_message(exc),
    )
    return render_problem(
        request,
        errors.ServiceUnavailable(
            f"The database is not migrated (schema {state.current or 'empty'}, this version needs "
            f"{state.head}); run `logistics migrate {spec.name}`.",
            retry_after=30,
            schema=state.as_dict(),
        ),
    )


def database_error_view(exc: Exception, request: Request) -> Response:
    from ..migrations import is_undefined_schema

    # Before connectivity: SQLite reports "no such table" as an OperationalError too.
    if is_undefined_schema(exc):
        response = _schema_problem(exc, request)
        if response is not None:
            return response
    if _is_connectivity(exc):
        log.warning("database unavailable: %s: %s", exc.__class__.__name__, _driver_message(exc))
        return render_problem(
            request, errors.ServiceUnavailable("The database is unreachable; retry shortly.")
        )
    return unexpected_view(exc, request)


def unexpected_view(exc: Exception, request: Request) -> Response:
    log.error("unhandled error", exc_info=exc)
    return render_problem(request, errors.Problem("An unexpected error occurred; it has been logged."))


def record_route_methods(config: Configurator) -> None:
    """Index route -> methods once, after all views are registered (for 405 Allow)."""

    def action() -> None:
        methods: dict[str, set[str]] = {}
        for item in config.registry.introspector.get_category("views") or []:
            view = item["introspectable"]
            route = view["route_name"]
            if not route:
                continue
            declared = view["request_methods"]
            if isinstance(declared, str):
                declared = (declared,)
            methods.setdefault(route, set()).update(declared or ())
        config.registry["logistics.route_methods"] = {name: sorted(found) for name, found in methods.items()}

    config.action(None, action, order=10_000)


def includeme(config: Configurator) -> None:
    # Exception views are never subject to the default permission.
    public: dict[str, object] = {}
    config.add_exception_view(problem_view, context=errors.Problem, **public)
    config.add_forbidden_view(forbidden_view, **public)
    config.add_notfound_view(notfound_view, **public)
    config.add_exception_view(http_exception_view, context=HTTPException, **public)
    config.add_exception_view(undecodable_path_view, context=URLDecodeError, **public)
    config.add_exception_view(database_error_view, context=DBAPIError, **public)
    config.add_exception_view(database_error_view, context=PoolTimeout, **public)
    config.add_exception_view(unexpected_view, context=Exception, **public)
    record_route_methods(config)

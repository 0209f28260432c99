"""No route is open by accident: every (route, method) declares its permission.

Only the operational endpoints are public. The self-check registers a view
without a permission and proves the walker catches it.
"""

from __future__ import annotations

import pytest
from pyramid.security import NO_PERMISSION_REQUIRED

from ..helpers.routes import PUBLIC, views

#: Public to JWTs but authenticated otherwise: carriers sign their webhooks
#: with an HMAC secret (tests/shipping/test_webhook.py proves the 401s).
SIGNED = {"carrier_webhook"}


def unprotected(registry) -> list[str]:
    """Every (route, method) served by a view without an explicit, non-public permission."""
    problems = []
    for method, name, permission in views(registry):
        if permission is None:
            problems.append(f"{method} {name}: no permission declared")
        elif permission == NO_PERMISSION_REQUIRED and name not in PUBLIC | SIGNED:
            problems.append(f"{method} {name}: public but not an operational endpoint")
    return problems


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_every_route_and_method_declares_a_permission(service_client, service):
    client = service_client(service)
    assert unprotected(client.registry) == []


def test_the_walker_catches_an_unprotected_view(specs, tmp_path):
    from ..conftest import make_settings

    settings = make_settings("inventory", f"sqlite:///{tmp_path}/x.sqlite3", tmp_path)
    config = specs["inventory"].configure(settings)
    config.add_route("oops", "/v1/oops")
    config.add_view(lambda request: {}, route_name="oops", request_method="POST", renderer="json")
    config.add_route("leak", "/v1/leak")
    config.add_view(lambda request: {}, route_name="leak", renderer="json", permission=NO_PERMISSION_REQUIRED)
    app = config.make_wsgi_app()
    found = unprotected(app.registry)
    assert "POST oops: no permission declared" in found
    assert "GET leak: public but not an operational endpoint" in found


def test_a_view_without_permission_is_closed_by_the_default(specs, tmp_path):
    from webtest import TestApp

    from ..conftest import make_settings

    settings = make_settings("inventory", f"sqlite:///{tmp_path}/x.sqlite3", tmp_path)
    config = specs["inventory"].configure(settings)
    config.add_route("oops", "/v1/oops")
    config.add_view(lambda request: {"secret": 1}, route_name="oops", renderer="json")
    TestApp(config.make_wsgi_app()).get("/v1/oops", status=401)

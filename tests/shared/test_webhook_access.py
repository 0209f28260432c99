"""Every role against every webhook route of shipping and support.

Each request meets objects of its own (an endpoint, a failed delivery), made by an admin
just before, so one role's delete or redelivery never changes what the next one meets.
In shipping the endpoint is limited to AMS: staff of AMS manage it, staff of RTM get the
404 of an endpoint that does not exist. The matrix is checked against the registered
routes, so a new webhook route without a row here fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from webtest import TestApp

from ..helpers.routes import served
from ..helpers.webhooks import WEBHOOK_SERVICES, add_delivery, collection, endpoint_body

ROLES = ("anonymous", "bad token", "admin", "support_agent", "service", "staff AMS", "staff RTM")
#: Who holds the permission in each service (everyone else: 403).
MANAGERS = {"shipping": {"admin", "staff AMS", "staff RTM"}, "support": {"admin", "support_agent"}}


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    path: str  # under /v1/<service>; {endpoint} and {delivery} filled per request
    status: int
    body: dict[str, Any] | None = None
    #: Staff of RTM: the endpoint is not theirs (404), or naming AMS is not theirs (422).
    foreign: int = 404
    overrides: dict[str, int] = field(default_factory=dict)


ENDPOINT = "/webhook-endpoints/{endpoint}"
SINCE = {"since": "2026-01-01T00:00:00Z"}
MATRIX = (
    Row("GET", "webhook_endpoints", "/webhook-endpoints", 200, foreign=200),
    Row("POST", "webhook_endpoints", "/webhook-endpoints", 201, {}, foreign=422),
    Row("GET", "webhook_endpoint", ENDPOINT, 200),
    Row("PATCH", "webhook_endpoint", ENDPOINT, 200, {"description": "ERP"}),
    Row("DELETE", "webhook_endpoint", ENDPOINT, 204),
    Row("POST", "webhook_endpoint_rotate_secret", ENDPOINT + "/rotate-secret", 200, {}),
    Row("POST", "webhook_endpoint_ping", ENDPOINT + "/ping", 202, {}),
    Row("GET", "webhook_deliveries", ENDPOINT + "/deliveries", 200),
    Row("GET", "webhook_delivery", ENDPOINT + "/deliveries/{delivery}", 200),
    Row("POST", "webhook_delivery_redeliver", ENDPOINT + "/deliveries/{delivery}/redeliver", 202, {}),
    Row("POST", "webhook_redeliver_failed", ENDPOINT + "/redeliver-failed", 202, SINCE),
    Row("GET", "webhook_event_types", "/webhook-event-types", 200, foreign=200),
)  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


def app_for(client, role: str) -> TestApp:
    if role == "anonymous":
        return client.anonymous
    if role == "bad token":
        return TestApp(client.wsgi, extra_environ={"HTTP_AUTHORIZATION": "Bearer not.a.token"})
    if role.startswith("staff "):
        return client.as_("warehouse_staff", role.split()[1])
    return client.as_(role)


def expected(service: str, row: Row, role: str) -> int:
    if role in ("anonymous", "bad token"):
        return 401
    if role not in MANAGERS[service]:
        return 403
    if service == "shipping" and role == "staff RTM":
        return row.foreign
    return row.overrides.get(role, row.status)


def body_for(service: str, row: Row) -> dict[str, Any] | None:
    if row.route == "webhook_endpoints" and row.method == "POST":
        return endpoint_body(service, **({"warehouses": ["AMS"]} if service == "shipping" else {}))
    return row.body


@pytest.mark.parametrize("service", WEBHOOK_SERVICES)
def test_the_matrix_covers_every_webhook_route(service_client, service):
    registered = {(m, r) for m, r in served(service_client(service).registry) if r.startswith("webhook_")}
    assert registered == {(row.method, row.route) for row in MATRIX}


@pytest.mark.parametrize("service", WEBHOOK_SERVICES)
def test_every_role_on_every_webhook_route(service_client, service, backend):
    client = service_client(service, backend)
    admin = client.as_()
    limited = {"warehouses": ["AMS"]} if service == "shipping" else {}
    failures = []
    for row in MATRIX:
        for role in ROLES:
            endpoint = admin.post_json(collection(service), endpoint_body(service, **limited)).json["id"]
            path = f"/v1/{service}{row.path}".format(
                endpoint=endpoint, delivery=add_delivery(client, endpoint)
            )
            app = app_for(client, role)
            body = body_for(service, row)
            if body is None:
                res = app.request(path, method=row.method, expect_errors=True)
            else:
                res = getattr(app, f"{row.method.lower()}_json")(path, body, expect_errors=True)
            want = expected(service, row, role)
            if res.status_int != want:
                failures.append(f"{row.method} {path} as {role}: {res.status_int}, expected {want}")
            elif want >= 400 and res.content_type != "application/problem+json":
                failures.append(f"{row.method} {path} as {role}: {res.content_type}")
    assert not failures, "\n".join(failures)

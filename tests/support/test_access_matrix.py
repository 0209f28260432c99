"""Every role against every support endpoint: who may do what, and what they see.

The matrix lists each (method, route) the service serves; a test checks the
list against the routes actually registered, so a new endpoint without a row
here fails. Staff of AMS see the ticket linked to an AMS shipment; staff of RTM
do not (a 404, as for a ticket that does not exist). Reads by staff also check
*what* they see: only linked tickets and only public comments.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from webtest import TestApp

from support import handlers

from ..helpers.routes import PUBLIC, served
from ..helpers.support import deliver, envelope, state
from ..helpers.webhooks import add_delivery, endpoint_body

ROLES = ("anonymous", "bad token", "admin", "support_agent", "service", "staff AMS", "staff RTM")
LINES = [{"sku": "SKU-1", "quantity": 1}]
TICKET = {"subject": "Parcel late", "description": "Customer asks", "priority": "normal"}


@dataclass
class World:
    shipment_id: str
    linked: str  # a ticket linked to the AMS shipment
    unlinked: str  # a ticket with no shipment
    endpoint: str  # a webhook endpoint
    delivery: str  # one of its deliveries, failed


@pytest.fixture(params=["sqlite", "postgres"])
def sup(service_client, request):
    return service_client("support", request.param)


def build(sup) -> World:
    shipment_id = str(uuid.uuid4())
    deliver(
        sup,
        handlers.shipment_view,
        envelope(
            "shipment.requested", {**state(shipment_id, "awaiting_stock"), "lines": LINES}, datetime.now(UTC)
        ),
    )
    admin = sup.as_()
    linked = admin.post_json("/v1/tickets", {**TICKET, "shipment_id": shipment_id}).json["id"]
    unlinked = admin.post_json("/v1/tickets", TICKET).json["id"]
    admin.post_json(f"/v1/tickets/{linked}/comments", {"body": "We are on it", "visibility": "public"})
    admin.post_json(f"/v1/tickets/{linked}/comments", {"body": "Warehouse slow", "visibility": "internal"})
    endpoint = admin.post_json("/v1/support/webhook-endpoints", endpoint_body("support")).json["id"]
    return World(shipment_id, linked, unlinked, endpoint, add_delivery(sup, endpoint))


def app_for(sup, role: str) -> TestApp:
    if role == "anonymous":
        return sup.anonymous
    if role == "bad token":
        return TestApp(sup.wsgi, extra_environ={"HTTP_AUTHORIZATION": "Bearer not.a.token"})
    if role.startswith("staff "):
        return sup.as_("warehouse_staff", role.split()[1])
    return sup.as_(role)


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    path: str  # formatted with the World's ids
    #: status per role; the roles not named get ``default``
    statuses: dict[str, int]
    body: dict[str, Any] | None = None
    default: int = 200


#: Staff read the tickets linked to their warehouses' shipments, and nothing else here.
NOT_STAFF = {"staff AMS": 403, "staff RTM": 403}
WRITERS_ONLY = {"service": 403, **NOT_STAFF}
ADMINS_ONLY = {"support_agent": 403, **WRITERS_ONLY}
#: Webhook subscriptions: admins and agents (tests/shared/test_webhook_access.py has the rest).
HOOKS = "/v1/support/webhook-endpoints"
MATRIX = (
    Row("GET", "tickets", "/v1/tickets", {}),
    Row("POST", "tickets", "/v1/tickets", WRITERS_ONLY, TICKET, default=201),
    Row("GET", "ticket", "/v1/tickets/{linked}", {"staff RTM": 404}),
    Row("PATCH", "ticket", "/v1/tickets/{linked}", WRITERS_ONLY, {"tags": ["seen"]}),
    Row("GET", "ticket_comments", "/v1/tickets/{linked}/comments", {"staff RTM": 404}),
    Row(
        "POST",
        "ticket_comments",
        "/v1/tickets/{linked}/comments",
        WRITERS_ONLY,
        {"body": "More news", "visibility": "internal"},
        default=201,
    ),
    Row("GET", "shipments", "/v1/shipments?reference=ORDER-1", NOT_STAFF),
    Row(
        "GET",
        "shipments",
        "/v1/shipments?status=awaiting_stock&warehouse=AMS&since=2020-01-01T00:00:00Z&sort=reference",
        NOT_STAFF,
    ),
    Row("GET", "shipment", "/v1/shipments/{shipment_id}", NOT_STAFF),
    Row("GET", "sla_policies", "/v1/sla-policies", NOT_STAFF),
    Row("GET", "sla_policy", "/v1/sla-policies/high", NOT_STAFF),
    Row(
        "PUT",
        "sla_policy",
        "/v1/sla-policies/high",
        ADMINS_ONLY,
        {"first_response_minutes": 240, "resolution_minutes": 1440},
    ),
    Row("GET", "webhook_endpoints", HOOKS, WRITERS_ONLY),
    Row("POST", "webhook_endpoints", HOOKS, WRITERS_ONLY, endpoint_body("support"), default=201),
    Row("GET", "webhook_endpoint", HOOKS + "/{endpoint}", WRITERS_ONLY),
    Row("PATCH", "webhook_endpoint", HOOKS + "/{endpoint}", WRITERS_ONLY, {"description": "ERP"}),
    # An endpoint that does not exist: whoever may delete gets its 404, the others their 403.
    Row("DELETE", "webhook_endpoint", HOOKS + f"/{uuid.uuid4()}", WRITERS_ONLY, default=404),
    Row("POST", "webhook_endpoint_rotate_secret", HOOKS + "/{endpoint}/rotate-secret", WRITERS_ONLY, {}),
    Row("POST", "webhook_endpoint_ping", HOOKS + "/{endpoint}/ping", WRITERS_ONLY, {}, default=202),
    Row("GET", "webhook_deliveries", HOOKS + "/{endpoint}/deliveries", WRITERS_ONLY),
    Row("GET", "webhook_delivery", HOOKS + "/{endpoint}/deliveries/{delivery}", WRITERS_ONLY),
    # The admin's redelivery leaves it pending: the agent's is then a 409.
    Row(
        "POST",
        "webhook_delivery_redeliver",
        HOOKS + "/{endpoint}/deliveries/{delivery}/redeliver",
        {"support_agent": 409, **WRITERS_ONLY},
        {},
        default=202,
    ),
    Row(
        "POST",
        "webhook_redeliver_failed",
        HOOKS + "/{endpoint}/redeliver-failed",
        WRITERS_ONLY,
        {"since": "2026-01-01T00:00:00Z"},
        default=202,
    ),
    Row("GET", "webhook_event_types", "/v1/support/webhook-event-types", WRITERS_ONLY),
)


def expected(row: Row, role: str) -> int:
    if role in ("anonymous", "bad token"):
        return 401
    return row.statuses.get(role, row.default)


def test_the_matrix_covers_every_endpoint(sup):
    registered = {(m, r) for m, r in served(sup.registry) if r not in PUBLIC}
    assert registered == {(row.method, row.route) for row in MATRIX}


def test_every_role_on_every_endpoint(sup):
    world = build(sup)
    ids = {
        "linked": world.linked,
        "shipment_id": world.shipment_id,
        "endpoint": world.endpoint,
        "delivery": world.delivery,
    }
    failures = []
    for row in MATRIX:
        for role in ROLES:
            app = app_for(sup, role)
            path = row.path.format(**ids)
            if row.body is None:
                res = app.request(path, method=row.method, expect_errors=True)
            else:
                send = getattr(app, f"{row.method.lower()}_json")
                res = send(path, row.body, expect_errors=True)
            want = expected(row, role)
            if res.status_int != want:
                failures.append(f"{row.method} {path} as {role}: {res.status_int}, expected {want}")
            elif want >= 400 and res.content_type != "application/problem+json":
                failures.append(f"{row.method} {path} as {role}: {res.content_type}")
    assert not failures, "\n".join(failures)


def test_staff_cannot_search_the_words_of_internal_notes(sup):
    world = build(sup)
    staff, agent = app_for(sup, "staff AMS"), app_for(sup, "support_agent")

    def found(app, q):
        return [t["id"] for t in app.get("/v1/tickets", {"q": q}).json["items"]]

    assert found(agent, "warehouse slow") == [world.linked]
    assert found(staff, "warehouse slow") == []  # an internal note
    assert found(staff, "on it") == [world.linked]  # a public answer


def test_what_each_reader_sees(sup):
    world = build(sup)
    seen = {}
    for role in ("admin", "support_agent", "service", "staff AMS", "staff RTM"):
        app = app_for(sup, role)
        tickets = {t["id"] for t in app.get("/v1/tickets").json["items"]}
        found = app.get("/v1/shipments", {"reference": "ORDER-1"}, expect_errors=True).json.get("items", [])
        comments = None
        if role != "staff RTM":
            items = app.get(f"/v1/tickets/{world.linked}/comments").json["items"]
            comments = sorted(c["visibility"] for c in items)
        seen[role] = (tickets, [s["shipment_id"] for s in found], comments)
    everything = {world.linked, world.unlinked}
    both = ["internal", "public"]
    assert seen == {
        "admin": (everything, [world.shipment_id], both),
        "support_agent": (everything, [world.shipment_id], both),
        "service": (everything, [world.shipment_id], both),
        "staff AMS": ({world.linked}, [], ["public"]),  # the read model itself is not theirs
        "staff RTM": (set(), [], None),
    }

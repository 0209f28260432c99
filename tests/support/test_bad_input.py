"""Bad input on every support write endpoint (and the list filters), through WebTest
and a real waitress server; the table machinery is tests/badinput.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from support import handlers

from ..badinput import DELETE, Case, Twin, envelope, invalid, js, run_table
from ..conftest import Client
from ..helpers.support import deliver, state
from ..helpers.support import envelope as event

TICKET = {
    "subject": "Where is my parcel?",
    "description": "Ordered last week.",
    "type": "question",
    "priority": "normal",
    "queue": "customers",
    "tags": ["wismo"],
}
COMMENT = {"body": "On its way", "visibility": "public"}
POLICY = {"first_response_minutes": 30, "resolution_minutes": 600}
TEXTS = ("", None, 5, [], "a\x00b")


@dataclass
class World:
    open: str  # an open ticket (version 2)
    closed: str
    linked: str  # linked to an AMS shipment: staff of RTM may not see it


@pytest.fixture(params=["sqlite", "postgres"])
def sup(service_client, request) -> Client:
    return service_client("support", request.param)


def build(sup: Client) -> World:
    agent = sup.as_("support_agent")
    shipment_id = str(uuid.uuid4())
    requested = {**state(shipment_id, "awaiting_stock"), "lines": [{"sku": "SKU-1", "quantity": 1}]}
    deliver(sup, handlers.shipment_view, event("shipment.requested", requested, datetime.now(UTC)))
    ids = {}
    for name in ("open", "closed", "linked"):
        body = {**TICKET, "shipment_id": shipment_id} if name == "linked" else TICKET
        ids[name] = agent.post_json("/v1/tickets", body, headers={"Idempotency-Key": f"k-{name}"}).json["id"]
    agent.patch_json(f"/v1/tickets/{ids['open']}", {"status": "open"})
    for status in ("open", "solved", "closed"):
        agent.patch_json(f"/v1/tickets/{ids['closed']}", {"status": status})
    return World(**ids)


def test_create_ticket_bad_input(sup: Client) -> None:
    build(sup)
    m, p = "POST", "/v1/tickets"
    agent = {"role": "support_agent"}
    cases = [
        *envelope(m, p, TICKET, sup.settings.max_body_bytes),
        *invalid(m, p, TICKET, "/subject", (*TEXTS, "x" * 201, DELETE)),
        *invalid(m, p, TICKET, "/description", (*TEXTS, "x" * 10_001, DELETE)),
        *invalid(m, p, TICKET, "/type", ("rant", "", None, 5, "QUESTION")),
        *invalid(m, p, TICKET, "/priority", ("asap", "", None, 1, "High")),
        *invalid(m, p, TICKET, "/queue", ("has space", "é", "", "x" * 33, 5, None)),
        *invalid(m, p, TICKET, "/tags", ("wismo", None, 5, {"a": 1}, ["t"] * 21)),
        *invalid(m, p, TICKET, "/tags/0", (3, None, "", "x" * 51, "a\x00")),
        *invalid(m, p, TICKET, "/assignee", ("", "x" * 201, 5, "\x00")),
        *invalid(m, p, TICKET, "/shipment_id", ("not-a-uuid", "", 5, str(uuid.uuid4()) + "\n")),
        *invalid(m, p, TICKET, "/order_reference", ("", "x" * 101, 5)),
        *invalid(m, p, TICKET, "/tracking_number", ("", "x" * 33, 5)),
        *invalid(m, p, TICKET, "/status", ("open",)),  # a ticket starts as new
        *invalid(m, p, TICKET, "/number", (7,)),
        *invalid(m, p, TICKET, "/subject", ("x" * 201,), **agent),
        Case("Idempotency-Key reused with another body", m, p, js({**TICKET, "subject": "Other"}), 422,
             ("/Idempotency-Key",), headers=(("Idempotency-Key", "k-open"),), **agent),
        Case("Idempotency-Key over 255 characters", m, p, js(TICKET), 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        Case("as a service", m, p, js(TICKET), 403, role="service"),
        Case("as warehouse staff", m, p, js(TICKET), 403, role="warehouse_staff", warehouses=("AMS",)),
    ]  # fmt: skip
    run_table(sup, cases)


def test_update_ticket_bad_input(sup: Client) -> None:
    world = build(sup)
    m, p, base = "PATCH", f"/v1/tickets/{world.open}", {"priority": "high"}
    unknown = str(uuid.uuid4())
    cases = [
        *envelope(m, p, base, sup.settings.max_body_bytes),
        Case("no field to change", m, p, b"{}", 422, ("/",)),
        *invalid(m, p, base, "/priority", ("asap", None, 1)),
        *invalid(m, p, base, "/status", ("lost", None, "OPEN", 1)),
        *invalid(m, p, base, "/subject", (*TEXTS, "x" * 201)),
        *invalid(m, p, base, "/description", ("", None, "x" * 10_001)),
        *invalid(m, p, base, "/type", ("rant",)),
        *invalid(m, p, base, "/queue", ("has space", None)),
        *invalid(m, p, base, "/tags", (None, "x", ["t"] * 21)),
        *invalid(m, p, base, "/assignee", ("", "x" * 201)),
        *invalid(m, p, base, "/shipment_id", (str(uuid.uuid4()),)),  # the links are fixed at creation
        *invalid(m, p, base, "/version", (2,)),
        *invalid(m, p, base, "/number", (1,)),
        Case("new is no target of open", m, p, js({"status": "new"}), 409),
        Case("closed is no target of open", m, p, js({"status": "closed"}), 409),
        Case("a closed ticket", m, f"/v1/tickets/{world.closed}", js({"status": "open"}), 409),
        Case("a closed ticket, any field", m, f"/v1/tickets/{world.closed}", js(base), 409),
        Case("stale If-Match", m, p, js(base), 412, headers=(("If-Match", '"1"'),)),
        Case("If-Match that is no ETag", m, p, js(base), 412, headers=(("If-Match", "garbage"),)),
        Case("unknown ticket", m, f"/v1/tickets/{unknown}", js(base), 404),
        Case("id that is no UUID", m, "/v1/tickets/not-a-uuid", js(base), 404),
        Case("id that is no UTF-8", m, "/v1/tickets/%FF", js(base), 404),
        Case("overlong id", m, "/v1/tickets/" + "x" * 1000, js(base), 404),
        Case("as a service", m, p, js(base), 403, role="service"),
        Case("as warehouse staff", m, p, js(base), 403, role="warehouse_staff", warehouses=("AMS",)),
    ]  # fmt: skip
    run_table(sup, cases)


def test_comment_bad_input(sup: Client) -> None:
    world = build(sup)
    m, p = "POST", f"/v1/tickets/{world.open}/comments"
    cases = [
        *envelope(m, p, COMMENT, sup.settings.max_body_bytes),
        *invalid(m, p, COMMENT, "/body", (*TEXTS, "x" * 10_001, DELETE)),
        *invalid(m, p, COMMENT, "/visibility", ("private", "", None, 1, "PUBLIC")),
        *invalid(m, p, COMMENT, "/author", ("someone else",)),  # the author is the caller
        Case("a closed ticket", m, f"/v1/tickets/{world.closed}/comments", js(COMMENT), 409),
        Case("unknown ticket", m, f"/v1/tickets/{uuid.uuid4()}/comments", js(COMMENT), 404),
        Case("id that is no UUID", m, "/v1/tickets/nope/comments", js(COMMENT), 404),
        Case("id that is no UTF-8", m, "/v1/tickets/%FF/comments", js(COMMENT), 404),
        Case("Idempotency-Key over 255 characters", m, p, js(COMMENT), 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        Case("as a service", m, p, js(COMMENT), 403, role="service"),
        Case("as warehouse staff", m, p, js(COMMENT), 403, role="warehouse_staff", warehouses=("AMS",)),
    ]  # fmt: skip
    run_table(sup, cases)


def test_sla_policy_bad_input(sup: Client) -> None:
    m, p = "PUT", "/v1/sla-policies/high"
    minutes = (0, -1, 1.5, "30", True, None, 366 * 24 * 60 + 1, 2**63)
    cases = [
        *envelope(m, p, POLICY, sup.settings.max_body_bytes),
        *invalid(m, p, POLICY, "/first_response_minutes", (*minutes, DELETE)),
        *invalid(m, p, POLICY, "/resolution_minutes", (*minutes, DELETE, 29)),  # 29 < first response
        *invalid(m, p, POLICY, "/priority", ("low",)),
        *invalid(m, p, POLICY, "/version", (1,)),
        Case("unknown priority", m, "/v1/sla-policies/critical", js(POLICY), 404),
        Case("priority in capitals", m, "/v1/sla-policies/HIGH", js(POLICY), 404),
        Case("stale If-Match", m, p, js(POLICY), 412, headers=(("If-Match", '"9"'),)),
        Case("If-Match that is no ETag", m, p, js(POLICY), 412, headers=(("If-Match", "W/x"),)),
        Case("as a support agent", m, p, js(POLICY), 403, role="support_agent"),
        Case("as a service", m, p, js(POLICY), 403, role="service"),
        Case("as warehouse staff", m, p, js(POLICY), 403, role="warehouse_staff", warehouses=("AMS",)),
    ]  # fmt: skip
    run_table(sup, cases)


def get(path: str, status: int, *pointers: str, **kw) -> Case:
    return Case(path, "GET", path, None, status, pointers, content_type=None, **kw)


def test_reads_with_bad_filters_and_hidden_tickets(sup: Client) -> None:
    world = build(sup)
    unknown = str(uuid.uuid4())
    staff = {"role": "warehouse_staff", "warehouses": ("RTM",)}
    cases = [
        get("/v1/tickets?status=lost", 422, "/status"),
        get("/v1/tickets?priority=asap", 422, "/priority"),
        get("/v1/tickets?sla=late", 422, "/sla"),
        get("/v1/tickets?shipment_id=nope", 422, "/shipment_id"),
        get("/v1/tickets?queue=a%20b", 422, "/queue"),
        get("/v1/tickets?q=x", 422, "/q"),
        get("/v1/tickets?limit=0", 422, "/limit"),
        get("/v1/tickets?limit=201", 422, "/limit"),
        get("/v1/tickets?cursor=garbage", 422, "/cursor"),
        get("/v1/tickets?bogus=1", 422, "/bogus"),
        get(f"/v1/tickets/{world.open}/comments?visibility=secret", 422, "/visibility"),
        get(f"/v1/tickets/{world.open}/comments?cursor=garbage", 422, "/cursor"),
        get("/v1/shipments?reference=" + "x" * 101, 422, "/reference"),
        get("/v1/shipments/not-a-uuid", 404),
        get(f"/v1/shipments/{unknown}", 404),
        get(f"/v1/tickets/{world.linked}", 404, **staff),
        get(f"/v1/tickets/{world.linked}/comments", 404, **staff),
    ]
    twins = (
        Twin(get(f"/v1/tickets/{world.linked}", 404, **staff), get(f"/v1/tickets/{unknown}", 404, **staff),
             world.linked, unknown),
        Twin(get(f"/v1/tickets/{world.linked}/comments", 404, **staff),
             get(f"/v1/tickets/{unknown}/comments", 404, **staff), world.linked, unknown),
    )  # fmt: skip
    run_table(sup, cases, twins)


def test_shipment_list_bad_input(sup: Client) -> None:
    from logistics_shared.schemas import encode_cursor

    build(sup)
    valid = sup.as_("support_agent").get("/v1/shipments", {"limit": 1}).json
    assert valid["items"]
    forged = {
        "another sort's": encode_cursor("reference", "R-1", str(uuid.uuid4())),
        "unknown sort's": encode_cursor("price", "1", str(uuid.uuid4())),
        "bad time": encode_cursor("-updated_at", "yesterday", str(uuid.uuid4())),
        "time without zone": encode_cursor("-updated_at", "2026-01-01T00:00:00", str(uuid.uuid4())),
        "two parts": encode_cursor("-updated_at", "2026-01-01T00:00:00+00:00"),
        "four parts": encode_cursor("-updated_at", "2026-01-01T00:00:00+00:00", str(uuid.uuid4()), "x"),
    }
    cases = [
        get("/v1/shipments?status=lost", 422, "/status"),
        get("/v1/shipments?status=", 422, "/status"),
        get("/v1/shipments?warehouse=a%20b", 422, "/warehouse"),
        get("/v1/shipments?reference=", 422, "/reference"),
        get("/v1/shipments?tracking_number=" + "x" * 33, 422, "/tracking_number"),
        get("/v1/shipments?since=yesterday", 422, "/since"),
        get("/v1/shipments?since=2026-12-01T10:00:00", 422, "/since"),  # no offset
        get("/v1/shipments?until=9999-01-01T00:00:00Z", 422, "/until"),
        get("/v1/shipments?sort=price", 422, "/sort"),
        get("/v1/shipments?sort=--updated_at", 422, "/sort"),
        get("/v1/shipments?sort=status", 422, "/sort"),
        get("/v1/shipments?limit=0", 422, "/limit"),
        get("/v1/shipments?limit=201", 422, "/limit"),
        get("/v1/shipments?limit=1.5", 422, "/limit"),
        get("/v1/shipments?cursor=garbage", 422, "/cursor"),
        *(get(f"/v1/shipments?cursor={cursor}", 422, "/cursor") for cursor in forged.values()),
        get("/v1/shipments?bogus=1", 422, "/bogus"),
    ]
    run_table(sup, cases)

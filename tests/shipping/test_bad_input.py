"""Bad input on every shipping write endpoint (and the reads by id and the list filters),
through WebTest and a real waitress server; the table machinery is tests/badinput.py.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from logistics_shared.outbox import Outbox
from shipping.domain import shipments as shipment_domain
from shipping.domain.webhooks import signature

from ..badinput import (
    DELETE,
    Case,
    Twin,
    action_envelope,
    envelope,
    invalid,
    js,
    patched,
    run_table,
    with_raw_field,
)
from ..conftest import Client
from ..helpers.shipping import CARRIER, DHL, SECRET, SERVICE, SHIPMENT, make_ready, setup_carriers
from ..inventory.conftest import ADDRESS

QUANTITIES = (0, -1, 1.5, "2", True, None, 2**63, 10**9 + 1, 2**64, 1e10)
SIZES = (-1, 1.5, "2", True, None, 2**63)
MAX_GRAMS, MAX_MM, MAX_PRICE = 10_000_000, 100_000, 10_000_000
BAD_SKUS = ("a b", "é", "", "x" * 65, 5, None, "SKU-1\n")
BAD_CODES = ("a b", "é", "", "x" * 33, 5, "AMS\n")
TEXTS = ("", None, 5, [], "a\x00b")
OPTIONAL_TEXTS = ("", 5, [], "a\x00b")  # null is allowed: "no value"
STAFF: dict[str, Any] = {"role": "warehouse_staff", "warehouses": ("AMS",)}
NESTED = b"[" * 1000 + b"]" * 1000
UNKNOWN_NUMBER = "ZZ00000000000"
PARCEL = SHIPMENT["parcels"][0]
LABEL = {"carrier": "POSTNL", "service": "standard"}
EVENT = {"status": "in_transit", "description": "Picked up", "location": "Amsterdam"}
NEW_CARRIER = {"code": "UPS", "name": "UPS", "webhook_secret": "ups-secret-012345", "tracking_prefix": "UP"}
NEW_SERVICE = {**SERVICE, "code": "express", "name": "Express"}


@dataclass
class World:
    awaiting: str  # AMS, awaiting stock (created with Idempotency-Key k-create)
    ready: str  # AMS, ready, in Amsterdam: POSTNL standard can label it
    labelled: str  # AMS, label bought from POSTNL (with Idempotency-Key k-label)
    number: str  # ... its tracking number
    moving: str  # AMS, in transit (a staff event with Idempotency-Key k-track)
    delivered: str
    cancelled: str
    on_hold: str
    bare: str  # AMS, ready, without parcels: nothing to rate
    abroad: str  # AMS, ready, to the US: no service serves it
    rtm: str  # RTM, labelled: hidden from staff of AMS
    rtm_number: str
    dhl_number: str  # a DHL label's tracking number


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client: Callable[..., Client], request: pytest.FixtureRequest) -> Client:
    return service_client("shipping", request.param)


def saga(client: Client, step: Callable[..., None], data: dict[str, Any]) -> None:
    """Run one of shipping's saga steps as the worker would."""
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session, session.begin():
        step(session, Outbox(session, table, producer="shipping"), data, "test")


def build(ship: Client) -> World:
    admin = ship.as_()
    setup_carriers(ship)
    admin.post_json("/v1/carriers", {**CARRIER, "code": "GLS"}, headers={"Idempotency-Key": "k-carrier"})
    admin.post_json("/v1/carriers/POSTNL/services", {**SERVICE, "code": "economy"},
                    headers={"Idempotency-Key": "k-service"})  # fmt: skip

    references = iter(range(1, 100))

    def shipment(key: str = "", **changes: Any) -> str:
        # A reference of its own: the same one again, while that shipment lives, is a 409.
        body = {**SHIPMENT, "reference": f"WORLD-{next(references)}", **changes}
        headers = {"Idempotency-Key": key} if key else {}
        return admin.post_json("/v1/shipments", body, headers=headers, status=201).json["id"]

    def ready(**changes: Any) -> str:
        sid = shipment(**changes)
        make_ready(ship, sid)
        return sid

    def labelled(sid: str, key: str = "", carrier: str = "POSTNL", service: str = "standard") -> str:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"carrier": carrier, "service": service}
        return admin.post_json(f"/v1/shipments/{sid}/label", body, headers=headers).json["tracking_number"]

    def track(sid: str, status: str, key: str = "") -> None:
        headers = {"Idempotency-Key": key} if key else {}
        admin.post_json(f"/v1/shipments/{sid}/tracking", {"status": status}, headers=headers, status=201)

    amsterdam = {**ADDRESS, "postal_code": "1011 AB"}
    world = {"awaiting": shipment("k-create"), "ready": ready(ship_to=amsterdam)}
    world["labelled"] = ready(ship_to=amsterdam)
    world["number"] = labelled(world["labelled"], "k-label")
    world["moving"] = ready(ship_to=amsterdam)
    labelled(world["moving"])
    track(world["moving"], "in_transit", "k-track")
    world["delivered"] = ready(ship_to=amsterdam)
    labelled(world["delivered"])
    track(world["delivered"], "in_transit")
    track(world["delivered"], "delivered")
    world["cancelled"] = shipment()
    admin.post_json(f"/v1/shipments/{world['cancelled']}/cancel", {}, status=200)
    world["on_hold"] = shipment()
    failed = {"reference": world["on_hold"], "reason": "insufficient_stock", "detail": "Short of SKU-1."}
    saga(ship, shipment_domain.on_reservation_failed, failed)
    world["bare"] = ready(parcels=[])
    world["abroad"] = ready(ship_to={**ADDRESS, "country": "US", "postal_code": "94105"})
    world["rtm"] = ready(warehouse="RTM", ship_to=amsterdam)
    world["rtm_number"] = labelled(world["rtm"])
    dhl = ready(ship_to={**ADDRESS, "country": "DE", "postal_code": "10115"})
    world["dhl_number"] = labelled(dhl, carrier="DHL", service="express")
    return World(**world)


def staff_twin(method: str, path: str, base: dict[str, Any], pointer: str) -> Twin:
    """Staff of AMS naming RTM (exists, not theirs) vs ZZZ (does not exist)."""
    hidden, unknown = (
        Case(f"{pointer} = {code}", method, path, js(patched(base, pointer, code)), 422, (pointer,), **STAFF)
        for code in ("RTM", "ZZZ")
    )
    return Twin(hidden, unknown, "RTM", "ZZZ")


BAD_IDS = {
    "unknown id": str(uuid.uuid4()),
    "id that is no UUID": "not-a-uuid",
    "id that is no UTF-8": "%FF",
    "id with a NUL": "%00",
    "overlong id": "x" * 1000,
}


def bad_ids(method: str, template: str, body: bytes | None, **kw: Any) -> list[Case]:
    """The same request at ids that name no shipment: each a 404."""
    return [Case(label, method, template.format(sid), body, 404, **kw) for label, sid in BAD_IDS.items()]


def hidden(method: str, template: str, body: bytes | None, world: World, **kw: Any) -> tuple[Case, Twin]:
    """RTM's shipment as staff of AMS: a 404 worded like an unknown id's."""
    unknown = BAD_IDS["unknown id"]
    case = Case("another warehouse's shipment", method, template.format(world.rtm), body, 404, **STAFF, **kw)
    other = Case("unknown id", method, template.format(unknown), body, 404, **STAFF, **kw)
    return case, Twin(case, other, world.rtm, unknown)


# --- shipments --------------------------------------------------------------------
def postal(country: str, code: str) -> Case:
    body = js(patched(patched(SHIPMENT, "/ship_to/country", country), "/ship_to/postal_code", code))
    pointers = ("/ship_to/postal_code",)
    return Case(f"postal code {code!r} in {country}", "POST", "/v1/shipments", body, 422, pointers)


def test_create_shipment_bad_input(ship: Client) -> None:
    build(ship)
    m, p = "POST", "/v1/shipments"
    no_lines = {k: v for k, v in SHIPMENT.items() if k != "lines"}
    no_ship_to = {k: v for k, v in SHIPMENT.items() if k != "ship_to"}
    many_lines = [{"sku": f"SKU-{i}", "quantity": 1} for i in range(201)]
    cases = [
        *envelope(m, p, SHIPMENT, ship.settings.max_body_bytes),
        *invalid(m, p, SHIPMENT, "/reference", (*TEXTS, "x" * 101, DELETE)),
        *invalid(m, p, SHIPMENT, "/warehouse", (*BAD_CODES, None, DELETE)),
        *invalid(m, p, SHIPMENT, "/warehouse", ("RTM", "ZZZ"), **STAFF),
        *invalid(m, p, SHIPMENT, "/warehouse", ("AMS",), role="warehouse_staff", warehouses=()),
        *invalid(m, p, SHIPMENT, "/ship_to", ("x", [], [ADDRESS], None, 5, DELETE)),
        *invalid(m, p, SHIPMENT, "/ship_to/bogus", (1,)),
        *invalid(m, p, SHIPMENT, "/ship_to/country", ("XX", "nl", "NLD", "", "N", "NL\n", 5, None, DELETE)),
        *invalid(m, p, SHIPMENT, "/ship_to/name", (*TEXTS, "x" * 201, DELETE)),
        *invalid(m, p, SHIPMENT, "/ship_to/line1", (*TEXTS, "x" * 201, DELETE)),
        *invalid(m, p, SHIPMENT, "/ship_to/line2", (*OPTIONAL_TEXTS, "x" * 201)),
        *invalid(m, p, SHIPMENT, "/ship_to/city", (*TEXTS, "x" * 101, DELETE)),
        *invalid(m, p, SHIPMENT, "/ship_to/region", (*OPTIONAL_TEXTS, "x" * 101)),
        *invalid(m, p, SHIPMENT, "/ship_to/postal_code", (*OPTIONAL_TEXTS, "x" * 21, "ABCDE")),
        *invalid(m, p, SHIPMENT, "/ship_to/phone", (*OPTIONAL_TEXTS, "x" * 41)),
        postal("NL", "1011"), postal("US", "9410"), postal("US", "941050"), postal("DE", "1011"),
        postal("GB", "XXX"), postal("CA", "12345"),
        postal("US", "94105\n"), postal("NL", "1011 AB\n"),  # "$" also matches before a newline
        postal("GB", "SW1A 1AA XYZ"), postal("GB", "GIR 0AAXX"),  # a prefix of the code is no code
        Case("1000 levels in ship_to", m, p, with_raw_field(no_ship_to, "ship_to", NESTED), 422,
             ("/ship_to",)),
        *invalid(m, p, SHIPMENT, "/lines", ([], None, "SKU-1", {}, DELETE, many_lines)),
        *invalid(m, p, SHIPMENT, "/lines/0", ("SKU-1", None, [], 1)),
        *invalid(m, p, SHIPMENT, "/lines/0/sku", (*BAD_SKUS, DELETE)),
        *invalid(m, p, SHIPMENT, "/lines/1/sku", ("SKU-1",)),  # twice
        *invalid(m, p, SHIPMENT, "/lines/0/quantity", (*QUANTITIES, DELETE)),
        *invalid(m, p, SHIPMENT, "/lines/0/bogus", (1,)),
        Case("1000 levels in lines", m, p, with_raw_field(no_lines, "lines", NESTED), 422, ("/lines/0",)),
        *invalid(m, p, SHIPMENT, "/parcels", (None, "x", {}, [PARCEL] * 51)),
        *invalid(m, p, SHIPMENT, "/parcels/0", (None, 5, [], "p")),
        *invalid(m, p, SHIPMENT, "/parcels/0/weight_g", (0, *SIZES, 70_001, DELETE)),
        *invalid(m, p, SHIPMENT, "/parcels/0/length_mm", (0, *SIZES, MAX_MM + 1, DELETE)),
        *invalid(m, p, SHIPMENT, "/parcels/0/width_mm", (0, -1, "2", MAX_MM + 1, DELETE)),
        *invalid(m, p, SHIPMENT, "/parcels/0/height_mm", (0, -1, 1.5, MAX_MM + 1, DELETE)),
        *invalid(m, p, SHIPMENT, "/parcels/0/bogus", (1,)),
        *invalid(m, p, SHIPMENT, "/status", ("ready",)),  # a shipment starts awaiting stock
        *invalid(m, p, SHIPMENT, "/id", (str(uuid.uuid4()),)),
        *invalid(m, p, SHIPMENT, "/label", ({"carrier": "POSTNL"},)),
        *invalid(m, p, SHIPMENT, "/lines/0/quantity", (0,), headers=(("Idempotency-Key", "k-fresh"),)),
        Case("Idempotency-Key reused with another body", m, p, js({**SHIPMENT, "reference": "OTHER"}), 422,
             ("/Idempotency-Key",), headers=(("Idempotency-Key", "k-create"),)),
        Case("Idempotency-Key over 255 characters", m, p, js(SHIPMENT), 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        Case("as a support agent", m, p, js(SHIPMENT), 403, role="support_agent"),
        *invalid(m, p, SHIPMENT, "/allow_duplicate_reference", ("true", "yes", 1, 0, None, [], {})),
        # The world's first shipment is live: its reference again is a 409 that writes nothing.
        Case("a live shipment's reference again", m, p, js({**SHIPMENT, "reference": "WORLD-1"}), 409),
        Case("... by staff of its warehouse", m, p, js({**SHIPMENT, "reference": "WORLD-1"}), 409, **STAFF),
        Case("... with a new Idempotency-Key", m, p, js({**SHIPMENT, "reference": "WORLD-1"}), 409,
             headers=(("Idempotency-Key", "k-new"),)),
        Case("... opting out with false", m, p,
             js({**SHIPMENT, "reference": "WORLD-1", "allow_duplicate_reference": False}), 409),
    ]  # fmt: skip
    run_table(ship, cases, (staff_twin(m, p, SHIPMENT, "/warehouse"),))


def test_cancel_bad_input(ship: Client) -> None:
    world = build(ship)
    m, t, base = "POST", "/v1/shipments/{}/cancel", {"reason": "customer changed mind"}
    p, body = t.format(world.awaiting), js(base)
    case, twin = hidden(m, t, body, world)
    cases = [
        *action_envelope(m, p, base, ship.settings.max_body_bytes),
        *invalid(m, p, base, "/reason", (*OPTIONAL_TEXTS, "x" * 501)),
        *invalid(m, p, base, "/status", ("cancelled",)),
        Case("a cancelled shipment", m, t.format(world.cancelled), body, 409),
        Case("a shipment in transit", m, t.format(world.moving), body, 409),
        Case("a delivered shipment", m, t.format(world.delivered), body, 409),
        *bad_ids(m, t, body),
        case,
        Case("as a support agent", m, p, body, 403, role="support_agent"),
    ]
    run_table(ship, cases, (twin,))


def test_retry_bad_input(ship: Client) -> None:
    world = build(ship)
    m, t, none = "POST", "/v1/shipments/{}/retry", {"content_type": None}
    p = t.format(world.on_hold)
    case, twin = hidden(m, t, None, world, **none)
    cases = [
        Case("a shipment awaiting stock", m, t.format(world.awaiting), None, 409, **none),
        Case("a ready shipment", m, t.format(world.ready), None, 409, **none),
        Case("a labelled shipment", m, t.format(world.labelled), None, 409, **none),
        Case("a cancelled shipment", m, t.format(world.cancelled), None, 409, **none),
        *bad_ids(m, t, None, **none),
        case,
        Case("query parameter", m, p + "?force=1", None, 422, ("/force",), **none),
        Case("as a support agent", m, p, None, 403, role="support_agent", **none),
        *action_envelope(m, p, {}, ship.settings.max_body_bytes),
    ]
    run_table(ship, cases, (twin,))


# --- labels -----------------------------------------------------------------------
def test_buy_label_bad_input(ship: Client) -> None:
    world = build(ship)
    m, t, body = "POST", "/v1/shipments/{}/label", js(LABEL)
    p = t.format(world.ready)
    dhl = {"carrier": "DHL", "service": "express"}
    case, twin = hidden(m, t, body, world)
    cases = [
        *envelope(m, p, LABEL, ship.settings.max_body_bytes),
        *invalid(m, p, LABEL, "/carrier", (*BAD_CODES, None, DELETE, "NOPE", "postnl")),
        *invalid(m, p, LABEL, "/service", (*BAD_CODES, None, DELETE, "nope", "express")),  # express is DHL's
        *invalid(m, p, LABEL, "/format", ("PDF", "png", "", None, 5)),
        *invalid(m, p, LABEL, "/tracking_number", ("POS00000000000",)),
        *invalid(m, p, LABEL, "/price", ({"amount_minor": 0, "currency": "EUR"},)),
        Case("a service that does not serve the destination", m, p, js(dhl), 422, ("/service",)),
        Case("a destination no service serves", m, t.format(world.abroad), body, 422, ("/service",)),
        Case("a shipment without parcels", m, t.format(world.bare), body, 409),
        Case("a shipment awaiting stock", m, t.format(world.awaiting), body, 409),
        Case("a shipment on hold", m, t.format(world.on_hold), body, 409),
        Case("a cancelled shipment", m, t.format(world.cancelled), body, 409),
        Case("a labelled shipment", m, t.format(world.labelled), body, 409),
        *bad_ids(m, t, body),
        case,
        Case("Idempotency-Key reused with another body", m, t.format(world.labelled),
             js({**LABEL, "format": "zpl"}), 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k-label"),)),
        Case("Idempotency-Key over 255 characters", m, p, body, 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        Case("as a support agent", m, p, body, 403, role="support_agent"),
    ]  # fmt: skip
    run_table(ship, cases, (twin,))


# --- tracking events recorded by staff -------------------------------------------------
def test_record_tracking_event_bad_input(ship: Client) -> None:
    world = build(ship)
    m, t, body = "POST", "/v1/shipments/{}/tracking", js(EVENT)
    p = t.format(world.labelled)
    case, twin = hidden(m, t, body, world)
    times = (
        "tomorrow", "", 5, True,
        "2026-11-24T08:00:00",  # no offset
        "1999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-14:00",
        "2026-13-01T00:00:00Z",
    )  # fmt: skip
    cases = [
        *envelope(m, p, EVENT, ship.settings.max_body_bytes),
        *invalid(m, p, EVENT, "/status", ("lost", "IN_TRANSIT", "", None, 5, "cancelled", "ready", DELETE)),
        *invalid(m, p, EVENT, "/description", (*OPTIONAL_TEXTS, "x" * 501)),
        *invalid(m, p, EVENT, "/location", (*OPTIONAL_TEXTS, "x" * 201)),
        *invalid(m, p, EVENT, "/occurred_at", times),
        *invalid(m, p, EVENT, "/event_id", ("ev-1",)),  # only carriers have event ids
        *invalid(m, p, EVENT, "/source", ("carrier:POSTNL",)),
        Case("labelled cannot become delivered", m, p, js({"status": "delivered"}), 409),
        Case("labelled cannot become out for delivery", m, p, js({"status": "out_for_delivery"}), 409),
        Case("a delivered shipment", m, t.format(world.delivered), body, 409),
        Case("a shipment awaiting stock", m, t.format(world.awaiting), body, 409),
        Case("a cancelled shipment", m, t.format(world.cancelled), body, 409),
        *bad_ids(m, t, body),
        case,
        Case("as a support agent", m, p, body, 403, role="support_agent"),
        # Last: the service records it instead (a changed database), which moves the shipment.
        Case("Idempotency-Key reused with another body", m, t.format(world.moving),
             js({"status": "exception"}), 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k-track"),)),
    ]  # fmt: skip
    run_table(ship, cases, (twin,))


# --- carriers and their rate tables ---------------------------------------------------
def test_create_carrier_bad_input(ship: Client) -> None:
    build(ship)
    m, p, body = "POST", "/v1/carriers", js(NEW_CARRIER)
    cases = [
        *envelope(m, p, NEW_CARRIER, ship.settings.max_body_bytes),
        *invalid(m, p, NEW_CARRIER, "/code", (*BAD_CODES, None, DELETE)),
        *invalid(m, p, NEW_CARRIER, "/name", (*TEXTS, "x" * 201, DELETE)),
        *invalid(m, p, NEW_CARRIER, "/webhook_secret", (
            "x" * 15, "x" * 201, "", None, 5, "a\x00" + "x" * 20, "\t" + "x" * 20, DELETE,
        )),
        *invalid(m, p, NEW_CARRIER, "/tracking_prefix", ("U", "UPSXX", "up", "U1", "", 5, "UP\n")),
        *invalid(m, p, NEW_CARRIER, "/services", ([],)),  # added one by one
        *invalid(m, p, NEW_CARRIER, "/created_at", ("2026-01-01T00:00:00Z",)),
        Case("existing code", m, p, js({**NEW_CARRIER, "code": "POSTNL"}), 409),
        Case("existing code, with an Idempotency-Key", m, p, js({**NEW_CARRIER, "code": "POSTNL"}), 409,
             headers=(("Idempotency-Key", "k-409"),)),
        Case("Idempotency-Key reused with another body", m, p, body, 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k-carrier"),)),
        Case("Idempotency-Key over 255 characters", m, p, body, 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        Case("as warehouse staff", m, p, body, 403, **STAFF),
        Case("as a support agent", m, p, body, 403, role="support_agent"),
        Case("as a service", m, p, body, 403, role="service"),
    ]  # fmt: skip
    run_table(ship, cases)


def test_create_carrier_service_bad_input(ship: Client) -> None:
    build(ship)
    m, p, base, body = "POST", "/v1/carriers/POSTNL/services", NEW_SERVICE, js(NEW_SERVICE)
    rt, zones, bands = "/rate_table", "/rate_table/zones", "/rate_table/weight_bands"
    zone, band = NEW_SERVICE["rate_table"]["zones"][0], NEW_SERVICE["rate_table"]["weight_bands"][0]
    no_table = {k: v for k, v in NEW_SERVICE.items() if k != "rate_table"}
    twice = patched(base, zones, [*base["rate_table"]["zones"], {"name": "nl", "countries": ["BE"]}])
    slash = patched(base, f"{bands}/0/prices", {**band["prices"], "a/b": 1})
    cases = [
        *envelope(m, p, NEW_SERVICE, ship.settings.max_body_bytes),
        *invalid(m, p, base, "/code", (*BAD_CODES, None, DELETE)),
        *invalid(m, p, base, "/name", (*TEXTS, "x" * 201, DELETE)),
        *invalid(m, p, base, "/carrier", ("DHL",)),  # the carrier is the one in the path
        *invalid(m, p, base, rt, ("x", [], None, 5, DELETE)),
        *invalid(m, p, base, f"{rt}/bogus", (1,)),
        Case("1000 levels in rate_table", m, p, with_raw_field(no_table, "rate_table", NESTED), 422, (rt,)),
        *invalid(m, p, base, f"{rt}/currency", ("eur", "EURO", "XYZ", "", None, 5, DELETE)),
        *invalid(m, p, base, f"{rt}/dim_divisor", (999, 10_001, 0, -1, 5000.5, "5000", True, None, DELETE)),
        *invalid(m, p, base, zones, ([], None, "nl", {}, DELETE, [zone] * 101)),
        *invalid(m, p, base, f"{zones}/0", ("nl", None, [])),
        *invalid(m, p, base, f"{zones}/0/name", (*BAD_CODES, None, DELETE)),
        Case("zone name twice", m, p, js(twice), 422, (f"{zones}/3/name",)),
        *invalid(m, p, base, f"{zones}/0/countries", ([], None, "NL", DELETE, ["NL"] * 251)),
        *invalid(m, p, base, f"{zones}/0/countries/0", ("nl", "XX", "NLD", "", None, 5, "NL\n")),
        *invalid(m, p, base, f"{zones}/1/postal_prefixes", (None, "10", {}, ["1"] * 1001)),
        *invalid(m, p, base, f"{zones}/1/postal_prefixes/0",
                 ("", "-10", " 10", "x" * 11, "10\n", "é1", None, 5)),
        *invalid(m, p, base, f"{zones}/0/bogus", (1,)),
        *invalid(m, p, base, bands, ([], None, {}, DELETE, [band] * 101)),
        *invalid(m, p, base, f"{bands}/0", (None, 5, "x")),
        *invalid(m, p, base, f"{bands}/0/max_g", (0, -1, 1.5, "2000", True, None, MAX_GRAMS + 1, DELETE)),
        *invalid(m, p, base, f"{bands}/1/max_g", (2000, 1000)),  # not increasing
        *invalid(m, p, base, f"{bands}/0/prices", ({}, None, [], "x", DELETE,
                                                    {f"z{i}": 1 for i in range(101)})),
        *invalid(m, p, base, f"{bands}/0/prices/nl", (-1, 1.5, "495", True, None, MAX_PRICE + 1, 2**63)),
        *invalid(m, p, base, f"{bands}/0/prices/mars", (495,)),  # no such zone
        *invalid(m, p, base, f"{bands}/0/prices/a b", (1,)),
        Case("zone name with a slash", m, p, js(slash), 422, (f"{bands}/0/prices/a~1b",)),
        *invalid(m, p, base, f"{bands}/0/bogus", (1,)),
        Case("existing service", m, p, js({**base, "code": "standard"}), 409),
        Case("unknown carrier", m, "/v1/carriers/NOPE/services", body, 404),
        Case("carrier code that is no code", m, "/v1/carriers/a%20b/services", body, 404),
        Case("carrier code that is no UTF-8", m, "/v1/carriers/%FF/services", body, 404),
        Case("carrier code with a NUL", m, "/v1/carriers/%00/services", body, 404),
        Case("overlong carrier code", m, "/v1/carriers/" + "x" * 1000 + "/services", body, 404),
        Case("Idempotency-Key reused with another body", m, p, body, 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k-service"),)),
        Case("Idempotency-Key over 255 characters", m, p, body, 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        Case("as warehouse staff", m, p, body, 403, **STAFF),
        Case("as a support agent", m, p, body, 403, role="support_agent"),
        Case("as a service", m, p, body, 403, role="service"),
    ]  # fmt: skip
    run_table(ship, cases)


# --- the carrier webhook ---------------------------------------------------------------
def signed(case: Case, secret: str = SECRET, stamp: int | None = None, sign: bytes | None = None) -> Case:
    """``case`` with the carrier's signature headers (over ``sign`` instead of the body if given)."""
    at = str(int(time.time()) if stamp is None else stamp)
    mac = signature(secret, at, (case.body or b"") if sign is None else sign)
    return replace(case, headers=(*case.headers, ("X-Carrier-Timestamp", at), ("X-Carrier-Signature", mac)))


def test_webhook_bad_input(ship: Client) -> None:
    """Every body case is signed correctly, so it is the body that is judged."""
    world = build(ship)
    m, p = "POST", "/v1/carriers/POSTNL/webhook"
    base = {
        "event_id": "ev-1",
        "tracking_number": world.number,
        "status": "in_transit",
        "location": "Amsterdam sorting centre",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body, now = js(base), int(time.time())
    dhl_body = js({**base, "tracking_number": world.dhl_number})
    stamps = (("no timestamp", None), ("a timestamp that is no number", "soon"), ("1e9", "1e9"))
    bodies = [
        *envelope(m, p, base, ship.settings.max_body_bytes),
        *invalid(m, p, base, "/event_id", (*TEXTS, "x" * 101, DELETE)),
        *invalid(m, p, base, "/tracking_number", (*TEXTS, "x" * 33, DELETE, UNKNOWN_NUMBER,
                                                  world.dhl_number)),
        *invalid(m, p, base, "/status", ("lost", "IN_TRANSIT", "", None, 5, "cancelled", "label_purchased",
                                         DELETE)),
        *invalid(m, p, base, "/description", (*OPTIONAL_TEXTS, "x" * 501)),
        *invalid(m, p, base, "/location", (*OPTIONAL_TEXTS, "x" * 201)),
        *invalid(m, p, base, "/occurred_at", ("tomorrow", "", 5, None, "2026-11-24T08:00:00",
                                              "1999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00", DELETE)),
        *invalid(m, p, base, "/shipment_id", (world.labelled,)),
    ]  # fmt: skip
    cases = [
        *(signed(case) for case in bodies),
        signed(Case("POSTNL's number at DHL's webhook", m, "/v1/carriers/DHL/webhook", body, 422,
                    ("/tracking_number",)), secret=DHL["webhook_secret"]),
        Case("unsigned", m, p, body, 401),
        Case("unsigned garbage", m, p, b"{not json", 401),
        signed(Case("signed with a wrong secret", m, p, body, 401), secret="wrong-secret-0123456789"),
        signed(Case("signed with DHL's secret", m, p, body, 401), secret=DHL["webhook_secret"]),
        signed(Case("signed an hour ago", m, p, body, 401), stamp=now - 3600),
        signed(Case("signed an hour ahead", m, p, body, 401), stamp=now + 3600),
        signed(Case("signature of another body", m, p, body, 401), sign=dhl_body),
        signed(Case("unknown carrier", m, "/v1/carriers/NOPE/webhook", body, 401)),
        # A path with a control character names nothing: 404 before routing, like one not in UTF-8.
        signed(Case("carrier code with a NUL", m, "/v1/carriers/%00/webhook", body, 404)),
        signed(Case("overlong carrier code", m, "/v1/carriers/" + "x" * 1000 + "/webhook", body, 401)),
        signed(Case("carrier code that is no UTF-8", m, "/v1/carriers/%FF/webhook", body, 404)),
        *(
            Case(label, m, p, body, 401, headers=(
                *((("X-Carrier-Timestamp", at),) if at else ()),
                ("X-Carrier-Signature", signature(SECRET, at or "", body)),
            ))
            for label, at in stamps
        ),
        Case("signature that is not hex", m, p, body, 401,
             headers=(("X-Carrier-Timestamp", str(now)), ("X-Carrier-Signature", "sha256=zz"))),
        Case("signature that is not ASCII", m, p, body, 401,
             headers=(("X-Carrier-Timestamp", str(now)), ("X-Carrier-Signature", "sha256=é"))),
        Case("signature without its scheme", m, p, body, 401,
             headers=(("X-Carrier-Timestamp", str(now)),
                      ("X-Carrier-Signature", signature(SECRET, str(now), body).removeprefix("sha256=")))),
    ]  # fmt: skip
    number = "/tracking_number"
    twin = Twin(
        signed(Case("another carrier's number", m, p, dhl_body, 422, (number,))),
        signed(Case("unknown number", m, p, js({**base, "tracking_number": UNKNOWN_NUMBER}), 422, (number,))),
        world.dhl_number,
        UNKNOWN_NUMBER,
    )
    run_table(ship, cases, (twin,))


# --- reads: bad ids, hidden shipments, bad filters -------------------------------------
def get(path: str, status: int, *pointers: str, **kw: Any) -> Case:
    return Case(path[:80], "GET", path, None, status, pointers, content_type=None, **kw)


def cursor(*values: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(values).encode()).decode().rstrip("=")


def test_reads_with_bad_filters_and_ids(ship: Client) -> None:
    world = build(ship)
    unknown = BAD_IDS["unknown id"]
    none = {"content_type": None}
    cases = [
        get("/v1/shipments?status=lost", 422, "/status"),
        get("/v1/shipments?status=READY", 422, "/status"),
        get("/v1/shipments?warehouse=a%20b", 422, "/warehouse"),
        get("/v1/shipments?warehouse=AMS%0A", 422, "/warehouse"),
        get("/v1/shipments?reference=", 422, "/reference"),
        get("/v1/shipments?reference=" + "x" * 101, 422, "/reference"),
        get("/v1/shipments?reference=a%00b", 422, "/reference"),
        get("/v1/shipments?since=yesterday", 422, "/since"),
        get("/v1/shipments?since=2026-01-01T00:00:00", 422, "/since"),  # no offset
        get("/v1/shipments?since=9999-12-31T23:59:59-14:00", 422, "/since"),
        get("/v1/shipments?until=1999-12-31T23:59:59Z", 422, "/until"),
        get("/v1/shipments?limit=0", 422, "/limit"),
        get("/v1/shipments?limit=201", 422, "/limit"),
        get("/v1/shipments?limit=1.5", 422, "/limit"),
        get("/v1/shipments?limit=x", 422, "/limit"),
        get("/v1/shipments?cursor=garbage", 422, "/cursor"),
        get("/v1/shipments?cursor=" + "x" * 513, 422, "/cursor"),
        get("/v1/shipments?cursor=" + cursor("yesterday", unknown), 422, "/cursor"),
        get("/v1/shipments?cursor=" + cursor("2026-01-01T00:00:00+00:00", "\x00"), 422, "/cursor"),
        get("/v1/shipments?bogus=1", 422, "/bogus"),
        get("/v1/carriers?limit=0", 422, "/limit"),
        get("/v1/carriers?cursor=garbage", 422, "/cursor"),
        get("/v1/carriers?cursor=" + cursor("\x00"), 422, "/cursor"),
        get("/v1/carriers?bogus=1", 422, "/bogus"),
        *bad_ids("GET", "/v1/shipments/{}", None, **none),
        *bad_ids("GET", "/v1/shipments/{}/rates", None, **none),
        *bad_ids("GET", "/v1/shipments/{}/label", None, **none),
        get(f"/v1/shipments/{world.ready}/label", 404),  # no label yet
        get(f"/v1/shipments/{world.bare}/rates", 409),  # no parcels to rate
        get(f"/v1/shipments/{world.ready}/rates?carrier=POSTNL", 422, "/carrier"),
        get(f"/v1/shipments/{world.labelled}/label?format=zpl", 422, "/format"),
        get(f"/v1/shipments/{world.rtm}", 404, **STAFF),
        get(f"/v1/shipments/{world.rtm}/rates", 404, **STAFF),
        get(f"/v1/shipments/{world.rtm}/label", 404, **STAFF),
        get("/v1/carriers/NOPE", 404),
        get("/v1/carriers/%FF", 404),
        get("/v1/carriers/%00", 404),
        get("/v1/carriers/POSTNL/services/nope", 404),
        get("/v1/carriers/POSTNL/services/%00", 404),
        get(f"/v1/tracking/{UNKNOWN_NUMBER}", 404),
        get("/v1/tracking/%FF", 404),
        get("/v1/tracking/%00", 404),
        get("/v1/tracking/" + "x" * 1000, 404),
        get(f"/v1/tracking/{world.rtm_number}", 404, **STAFF),
    ]
    shipment, number = (world.rtm, unknown), (world.rtm_number, UNKNOWN_NUMBER)
    paths = {"/v1/shipments/{}": shipment, "/v1/shipments/{}/rates": shipment,
             "/v1/shipments/{}/label": shipment, "/v1/tracking/{}": number}  # fmt: skip
    twins = tuple(
        Twin(get(path.format(theirs), 404, **STAFF), get(path.format(missing), 404, **STAFF), theirs, missing)
        for path, (theirs, missing) in paths.items()
    )
    run_table(ship, cases, twins)

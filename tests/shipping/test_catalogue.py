"""Shipping's read model of inventory's catalogue: built by its handler through the inbox,
in version order; what POST /v1/shipments checks against it, and only while it is synced
(the drain mark of its consumer); parcels derived from it; the label's sender block."""

from __future__ import annotations

import itertools
import re
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from logistics_shared.bus.connection import connection_factory
from logistics_shared.bus.consumer import EventConsumer
from logistics_shared.events import REGISTRY, new_envelope
from shipping.domain import catalogue as domain
from shipping.handlers import handlers

from ..helpers.shipping import make_ready, setup_carriers
from ..inventory.conftest import ADDRESS

WAREHOUSE_ADDRESS = {
    "name": "Amsterdam DC",
    "line1": "Dock 7",
    "line2": "Gate 4",
    "city": "Amsterdam",
    "postal_code": "1011 AB",
    "country": "NL",
    "phone": "+31 20 123 4567",
}


def item(sku: str = "TEE-M", version: int = 1, **over: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": f"Item {sku}",
        "unit_weight_g": 180,
        "length_mm": 300,
        "width_mm": 250,
        "height_mm": 20,
        "version": version,
        **over,
    }


def warehouse(code: str = "AMS", version: int = 1, **over: Any) -> dict[str, Any]:
    return {"code": code, "name": f"Warehouse {code}", "address": ADDRESS, "version": version, **over}


def envelope(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """An event as the consumer decodes it off the wire (the producer's strict check first)."""
    made = new_envelope(type_, data, producer="inventory")
    return REGISTRY.load_incoming(REGISTRY.validate_outgoing(made))


def consumer(client) -> EventConsumer:
    return EventConsumer(
        service="shipping",
        settings=client.settings,
        session_factory=client.registry["dbsession_factory"],
        platform=client.registry["logistics.platform_tables"],
        handlers=handlers(),
        metrics=client.registry["logistics.metrics"].bus,
        connect=connection_factory(client.settings, heartbeat=True),
    )


def catalogue_handler():
    (found,) = [h for h in handlers() if h.name == domain.HANDLER]
    return found


def rows(client, sql: str) -> list[Any]:
    with client.engine.connect() as conn:
        return list(conn.execute(text(sql)))


def feed(client, *events: tuple[str, dict[str, Any]]) -> None:
    run, handler = consumer(client), catalogue_handler()
    for type_, data in events:
        assert run.apply(handler, envelope(type_, data))


_references = itertools.count(1)


def mark(client, drained_at: datetime | None, handler: str = domain.HANDLER) -> None:
    """The drain mark as the catalogue's consumer writes it (see logistics_shared.bus.drain)."""
    with client.registry["dbsession_factory"]() as session, session.begin():
        session.execute(text("DELETE FROM drain_marks"))
        session.execute(
            text("INSERT INTO drain_marks (handler, drained_at) VALUES (:h, :at)"),
            {"h": handler, "at": drained_at},
        )


def order(*lines: tuple[str, int], warehouse: str = "AMS", parcels: list | None = None) -> dict[str, Any]:
    # A reference of its own: a live shipment's reference again is a 409 (domain/references.py).
    body = {
        "reference": f"ORDER-{next(_references)}",
        "warehouse": warehouse,
        "ship_to": ADDRESS,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }
    if parcels is not None:
        body["parcels"] = parcels
    return body


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


# -- the handler -------------------------------------------------------------------------
def test_the_catalogue_queue_takes_the_four_events_and_its_name_is_the_drain_marks():
    handler = catalogue_handler()
    assert handler.producer == "inventory"
    assert set(handler.events) == {"item.created", "item.updated", "warehouse.created", "warehouse.updated"}
    from shipping.handlers import drain_watch

    assert drain_watch().handlers == (handler.name,)


def test_events_build_the_read_model_once_and_never_go_back_a_version(ship):
    run, handler = consumer(ship), catalogue_handler()
    created = envelope("item.created", item())
    assert run.apply(handler, created)
    assert not run.apply(handler, created)  # a redelivery: the inbox has it
    assert run.apply(handler, envelope("item.updated", item(version=3, unit_weight_g=500)))
    # Older than what is kept, delivered late: applied (a new event id) but changes nothing.
    assert run.apply(handler, envelope("item.updated", item(version=2, unit_weight_g=999, name="Old")))
    assert rows(ship, "SELECT sku, name, unit_weight_g, version FROM catalogue_items") == [
        ("TEE-M", "Item TEE-M", 500, 3)
    ]

    # An update that overtook its item's creation: the creation arrives later, and loses.
    assert run.apply(handler, envelope("item.updated", item("MUG", version=2, height_mm=99)))
    assert run.apply(handler, envelope("item.created", item("MUG", version=1, height_mm=10)))
    assert rows(ship, "SELECT height_mm, version FROM catalogue_items WHERE sku = 'MUG'") == [(99, 2)]


def test_a_batch_with_a_duplicate_and_reordered_warehouse_events_keeps_the_newest(ship):
    run, handler = consumer(ship), catalogue_handler()
    newer = envelope(
        "warehouse.updated", warehouse(version=2, address=WAREHOUSE_ADDRESS, name="Amsterdam DC")
    )
    batch = [newer, envelope("warehouse.created", warehouse()), newer]
    assert run.apply_many(handler, batch) == 2
    assert run.apply_many(handler, batch) == 0
    ((code, name, phone, version, address),) = rows(
        ship, "SELECT code, name, phone, version, address FROM catalogue_warehouses"
    )
    assert (code, name, phone, version) == ("AMS", "Amsterdam DC", "+31 20 123 4567", 2)
    assert '"line2":"Gate 4"' in address


def test_an_event_with_fields_this_consumer_does_not_know_still_applies(ship):
    body = REGISTRY.validate_outgoing(new_envelope("item.created", item(), producer="inventory"))
    body["data"]["colour"] = "red"  # a newer producer
    body["data"]["version"] = 1
    assert consumer(ship).apply(catalogue_handler(), REGISTRY.load_incoming(body))
    assert rows(ship, "SELECT sku FROM catalogue_items") == [("TEE-M",)]


# -- the lag rule -------------------------------------------------------------------------
NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("state", "drained_at", "expected"),
    [
        ("no mark: never synced", "none", 201),
        ("cleared: a delivery is being applied", None, 201),
        ("stale: the consumer stopped marking", timedelta(seconds=-60), 201),
        ("a mark of another handler", "other", 201),
        ("fresh, but no warehouse ever arrived: never synced", "empty", 201),
        ("fresh: the queue was drained a moment ago", timedelta(seconds=-1), 422),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_unknown_references_are_422_only_while_the_read_model_is_synced(ship, state, drained_at, expected):
    if drained_at != "empty":
        feed(ship, ("warehouse.created", warehouse()))
    feed(ship, ("item.created", item("SKU-1")))
    if drained_at == "empty":
        mark(ship, datetime.now(UTC))
    elif drained_at == "other":
        mark(ship, datetime.now(UTC), handler="stock_reserved")
    elif drained_at != "none":
        mark(ship, None if drained_at is None else datetime.now(UTC) + drained_at)
    admin = ship.as_()
    res = admin.post_json("/v1/shipments", order(("SKU-1", 1), ("TYPO-1", 2)), status=expected)
    if expected == 422:
        assert res.content_type == "application/problem+json"
        assert res.json["errors"] == [{"pointer": "/lines/1/sku", "detail": "Unknown SKU 'TYPO-1'."}]
        assert rows(ship, "SELECT count(*) FROM shipments") == [(0,)]
        assert rows(ship, "SELECT count(*) FROM outbox WHERE event_type = 'shipment.requested'") == [(0,)]
    else:
        assert res.json["status"] == "awaiting_stock"  # the saga decides, as before


def test_a_synced_read_model_names_every_unknown_reference_as_unknown_ones_are_worded(ship):
    feed(ship, ("warehouse.created", warehouse()), ("item.created", item("SKU-1")))
    mark(ship, datetime.now(UTC))
    admin = ship.as_()
    res = admin.post_json(
        "/v1/shipments", order(("NOPE", 1), ("SKU-1", 1), ("GONE", 1), warehouse="ZZZ"), status=422
    )
    assert res.json["errors"] == [
        {"pointer": "/warehouse", "detail": "Unknown warehouse 'ZZZ'."},
        {"pointer": "/lines/0/sku", "detail": "Unknown SKU 'NOPE'."},
        {"pointer": "/lines/2/sku", "detail": "Unknown SKU 'GONE'."},
    ]
    # Staff of AMS naming RTM (known, not theirs) get the very words of an unknown one.
    feed(ship, ("warehouse.created", warehouse("RTM")))
    staff = ship.as_("warehouse_staff", "AMS")
    hidden = staff.post_json("/v1/shipments", order(("SKU-1", 1), warehouse="RTM"), status=422).json
    unknown = staff.post_json("/v1/shipments", order(("SKU-1", 1), warehouse="QQQ"), status=422).json
    assert hidden["errors"] == [{"pointer": "/warehouse", "detail": "Unknown warehouse 'RTM'."}]
    assert unknown["errors"] == [{"pointer": "/warehouse", "detail": "Unknown warehouse 'QQQ'."}]
    admin.post_json("/v1/shipments", order(("SKU-1", 1)), status=201)


def test_the_rule_itself():
    now = datetime.now(UTC)
    assert domain.synced(now - timedelta(seconds=4), 5, now)
    assert not domain.synced(now - timedelta(seconds=6), 5, now)
    assert not domain.synced(None, 5, now)
    assert not domain.synced(now, 0, now)  # 0: the check is off
    assert domain.synced((now - timedelta(seconds=1)).replace(tzinfo=None), 5, now)  # SQLite's naive UTC


def test_a_fresh_seconds_of_zero_never_rejects(service_client):
    ship = service_client("shipping", "sqlite", catalogue_fresh_seconds=0)
    feed(ship, ("warehouse.created", warehouse()))
    mark(ship, datetime.now(UTC))
    ship.as_().post_json("/v1/shipments", order(("TYPO", 1)), status=201)


# -- parcels from the catalogue --------------------------------------------------------------
def test_parcels_default_from_the_items_when_the_request_gives_none(ship):
    feed(
        ship,
        ("item.created", item("TEE-M", unit_weight_g=180, length_mm=300, width_mm=250, height_mm=20)),
        ("item.created", item("MUG", unit_weight_g=350, length_mm=120, width_mm=90, height_mm=100)),
    )
    admin = ship.as_()
    # Not synced (no mark): nothing is rejected, but the items it knows still make the parcel.
    made = admin.post_json("/v1/shipments", order(("TEE-M", 2), ("MUG", 1)), status=201).json
    expected = {"weight_g": 2 * 180 + 350, "length_mm": 300, "width_mm": 250, "height_mm": 2 * 20 + 100}
    assert made["parcels"] == [expected]
    assert admin.get(f"/v1/shipments/{made['id']}").json["parcels"] == [expected]
    # An empty list is no parcels given either.
    assert admin.post_json("/v1/shipments", order(("MUG", 1), parcels=[])).json["parcels"] == [
        {"weight_g": 350, "length_mm": 120, "width_mm": 90, "height_mm": 100}
    ]


def test_given_parcels_are_kept_and_no_parcel_is_guessed_for_an_unknown_item(ship):
    feed(ship, ("item.created", item("TEE-M")))
    admin = ship.as_()
    given = [{"weight_g": 1000, "length_mm": 400, "width_mm": 300, "height_mm": 200}]
    assert admin.post_json("/v1/shipments", order(("TEE-M", 1), parcels=given)).json["parcels"] == given
    assert admin.post_json("/v1/shipments", order(("TEE-M", 1), ("NEW", 1))).json["parcels"] == []


def test_no_parcel_is_derived_beyond_what_one_parcel_may_weigh(ship):
    feed(ship, ("item.created", item("ANVIL", unit_weight_g=40_000)))
    admin = ship.as_()
    assert admin.post_json("/v1/shipments", order(("ANVIL", 1))).json["parcels"][0]["weight_g"] == 40_000
    assert admin.post_json("/v1/shipments", order(("ANVIL", 2))).json["parcels"] == []


def test_default_parcel_rule():
    items = {"A": item("A", height_mm=10), "B": item("B", length_mm=500, width_mm=20, height_mm=30)}
    lines = [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}]
    assert domain.default_parcel(lines, items) == {
        "weight_g": 4 * 180,
        "length_mm": 500,
        "width_mm": 250,
        "height_mm": 3 * 10 + 30,
    }
    assert domain.default_parcel([{"sku": "C", "quantity": 1}], items) is None
    assert domain.default_parcel([{"sku": "A", "quantity": 10_001}], items) is None  # 100 m high


# -- the label's sender block -------------------------------------------------------------
def pdf_text(body: bytes) -> str:
    """The text shown in an uncompressed fpdf2 PDF (its ``(...) Tj`` operators)."""
    found = re.findall(rb"\((.*?)(?<!\\)\) Tj", body)
    if not found:  # in case a content stream is compressed after all
        found = re.findall(rb"\((.*?)(?<!\\)\) Tj", zlib.decompress(body))
    return "\n".join(part.decode("latin-1").replace("\\(", "(").replace("\\)", ")") for part in found)


def labelled_document(ship, fmt: str) -> str:
    setup_carriers(ship)
    body = order(
        ("SKU-1", 1), parcels=[{"weight_g": 500, "length_mm": 200, "width_mm": 150, "height_mm": 100}]
    )
    body["ship_to"] = {**ADDRESS, "postal_code": "1011AB"}
    shipment = ship.as_().post_json("/v1/shipments", body, status=201).json
    make_ready(ship, shipment["id"])
    ship.as_().post_json(
        f"/v1/shipments/{shipment['id']}/label",
        {"carrier": "POSTNL", "service": "standard", "format": fmt},
        status=201,
    )
    document = ship.as_().get(f"/v1/shipments/{shipment['id']}/label").body
    return pdf_text(document) if fmt == "pdf" else document.decode()


@pytest.mark.parametrize("fmt", ["pdf", "zpl"])
def test_the_label_prints_the_warehouses_address_phone_and_ship_date(ship, fmt):
    feed(ship, ("warehouse.created", warehouse(name="Amsterdam DC", address=WAREHOUSE_ADDRESS)))
    document = labelled_document(ship, fmt)
    today = datetime.now(UTC).date().isoformat()
    for line in ("FROM: Amsterdam DC", "Dock 7", "Gate 4", "1011 AB Amsterdam", "Tel: +31 20 123 4567"):
        assert line in document, (line, document)
    assert f"Ship date: {today}" in document
    assert "FROM: warehouse AMS" not in document
    # The address's name line is the warehouse's own name: printed once.
    assert document.count("Amsterdam DC") == 1


def test_a_label_for_a_warehouse_shipping_does_not_know_yet_prints_its_code(ship):
    document = labelled_document(ship, "zpl")
    assert "FROM: warehouse AMS" in document
    assert "Ship date: " in document and "Tel:" not in document

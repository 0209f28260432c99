"""Shipments over HTTP: creation, listing, history, cancel, retry, access."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ..helpers.shipping import (
    SHIPMENT,
)
from ..inventory.conftest import ADDRESS


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def outbox(client) -> list[str]:
    with client.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


def test_create_asks_inventory_to_reserve(ship):
    res = ship.as_("warehouse_staff", "AMS").post_json("/v1/shipments", SHIPMENT, status=201)
    body = res.json
    assert body["status"] == "awaiting_stock"
    assert body["lines"] == [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}]
    assert body["parcels"][0]["weight_g"] == 1200
    assert [h["to_status"] for h in body["history"]] == ["awaiting_stock"]
    assert body["history"][0]["cause"] == "warehouse_staff:test-warehouse_staff"
    assert res.headers["Location"].endswith(f"/v1/shipments/{body['id']}")
    assert outbox(ship) == ["shipment.requested"]
    assert ship.as_().get(f"/v1/shipments/{body['id']}").json["ship_to"]["country"] == "NL"


def test_list_filters_and_scoping(ship):
    admin = ship.as_()
    admin.post_json("/v1/shipments", SHIPMENT)
    admin.post_json("/v1/shipments", {**SHIPMENT, "warehouse": "RTM", "reference": "ORDER-2"})
    assert len(admin.get("/v1/shipments").json["items"]) == 2
    assert [s["reference"] for s in admin.get("/v1/shipments", {"warehouse": "RTM"}).json["items"]] == [
        "ORDER-2"
    ]
    assert admin.get("/v1/shipments", {"status": "ready"}).json["items"] == []
    staff = ship.as_("warehouse_staff", "AMS")
    mine = staff.get("/v1/shipments").json["items"]
    assert [s["reference"] for s in mine] == ["ORDER-1"]
    other = admin.get("/v1/shipments", {"warehouse": "RTM"}).json["items"][0]["id"]
    staff.get(f"/v1/shipments/{other}", status=404)
    staff.post_json(f"/v1/shipments/{other}/cancel", {}, status=404)
    res = staff.post_json("/v1/shipments", {**SHIPMENT, "warehouse": "RTM"}, status=422)
    assert res.json["errors"] == [{"pointer": "/warehouse", "detail": "Unknown warehouse 'RTM'."}]
    page = admin.get("/v1/shipments", {"limit": 1}).json
    rest = admin.get("/v1/shipments", {"limit": 1, "cursor": page["next_cursor"]}).json
    assert page["items"][0]["id"] != rest["items"][0]["id"]
    assert rest["next_cursor"] is None


def test_cancel_then_illegal_transitions_are_409_naming_the_state(ship):
    admin = ship.as_()
    shipment = admin.post_json("/v1/shipments", SHIPMENT).json
    done = admin.post_json(f"/v1/shipments/{shipment['id']}/cancel", {"reason": "customer changed mind"}).json
    assert done["status"] == "cancelled"
    assert done["history"][-1]["detail"] == "customer changed mind"
    again = admin.post_json(f"/v1/shipments/{shipment['id']}/cancel", {}, status=409)
    assert again.json["current_status"] == "cancelled"
    assert "cancelled" in again.json["detail"]
    admin.post(f"/v1/shipments/{shipment['id']}/retry", status=409)
    assert outbox(ship) == ["shipment.requested", "shipment.cancelled"]


def test_bad_input_changes_nothing(ship):
    admin = ship.as_()
    cases = [
        ({**SHIPMENT, "lines": []}, "/lines"),
        ({**SHIPMENT, "lines": [{"sku": "SKU-1", "quantity": 0}]}, "/lines/0/quantity"),
        ({**SHIPMENT, "lines": [{"sku": "SKU-1", "quantity": "2"}]}, "/lines/0/quantity"),
        (
            {**SHIPMENT, "lines": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-1", "quantity": 1}]},
            "/lines/1/sku",
        ),
        ({**SHIPMENT, "ship_to": {**ADDRESS, "country": "XX"}}, "/ship_to/country"),
        ({**SHIPMENT, "ship_to": {**ADDRESS, "extra": 1}}, "/ship_to/extra"),
        (
            {**SHIPMENT, "parcels": [{"weight_g": 0, "length_mm": 1, "width_mm": 1, "height_mm": 1}]},
            "/parcels/0/weight_g",
        ),
        ({**SHIPMENT, "bogus": True}, "/bogus"),
    ]
    for body, pointer in cases:
        res = admin.post_json("/v1/shipments", body, status=422)
        assert pointer in [e["pointer"] for e in res.json["errors"]], (pointer, res.json)
    admin.post("/v1/shipments", "{", headers={"Content-Type": "application/json"}, status=400)
    admin.post("/v1/shipments", "x", headers={"Content-Type": "text/plain"}, status=415)
    admin.get("/v1/shipments/not-a-uuid", status=404)
    ship.as_("support_agent").post_json("/v1/shipments", SHIPMENT, status=403)
    assert outbox(ship) == []


def test_the_requested_hold_expires_after_the_configured_hours(service_client):
    from datetime import UTC, datetime, timedelta

    import orjson

    ship = service_client("shipping", shipment_hold_hours=2)
    ship.as_().post_json("/v1/shipments", SHIPMENT)
    with ship.engine.connect() as conn:
        payload = orjson.loads(conn.execute(text("SELECT payload FROM outbox")).scalar_one())
    hold_until = datetime.fromisoformat(payload["data"]["hold_until"])
    assert timedelta(hours=1, minutes=59) < hold_until - datetime.now(UTC) <= timedelta(hours=2)
    forever = service_client("shipping", shipment_hold_hours=0)
    forever.as_().post_json("/v1/shipments", SHIPMENT)
    with forever.engine.connect() as conn:
        assert (
            orjson.loads(conn.execute(text("SELECT payload FROM outbox")).scalar_one())["data"]["hold_until"]
            is None
        )


@pytest.mark.parametrize(
    ("country", "postal_code", "ok"),
    [
        ("NL", "1011 AB", True),
        ("NL", "1011ab", True),
        ("NL", "ABCDE", False),
        ("US", "94105", True),
        ("US", "9410", False),
        ("DE", "10115", True),
        ("DE", "1011", False),
        ("AE", "anything", True),
    ],
)
def test_postal_codes_are_checked_where_the_format_is_known(service_client, country, postal_code, ok):
    ship = service_client("shipping")
    body = {**SHIPMENT, "ship_to": {**ADDRESS, "country": country, "postal_code": postal_code}}
    res = ship.as_().post_json("/v1/shipments", body, status=201 if ok else 422)
    if not ok:
        assert res.json["errors"] == [
            {"pointer": "/ship_to/postal_code", "detail": res.json["errors"][0]["detail"]}
        ]
        assert country in res.json["errors"][0]["detail"]


def test_cancel_and_retry_honour_if_match(ship):
    """A client that read version N and sends ``If-Match: "N"`` must not cancel (or retry) a
    shipment that has moved on since: 412 with the current ETag, and nothing changes."""
    admin = ship.as_()
    shipment = admin.post_json("/v1/shipments", SHIPMENT).json
    url = f"/v1/shipments/{shipment['id']}"
    etag = admin.get(url).headers["ETag"]
    with ship.engine.begin() as conn:  # the saga moves it on (inventory found no stock)
        conn.execute(
            text("UPDATE shipments SET status = 'on_hold', version = version + 1 WHERE id = :id"),
            {"id": shipment["id"]},
        )
    stale = admin.post_json(f"{url}/cancel", {}, headers={"If-Match": etag}, status=412)
    assert stale.json["current_etag"] == admin.get(url).headers["ETag"] != etag
    admin.post(f"{url}/retry", headers={"If-Match": etag}, status=412)
    admin.post_json(f"{url}/cancel", {}, headers={"If-Match": "nonsense"}, status=412)
    assert admin.get(url).json["status"] == "on_hold"
    assert outbox(ship) == ["shipment.requested"]
    current = admin.get(url).headers["ETag"]
    retried = admin.post(f"{url}/retry", headers={"If-Match": current})
    assert retried.json["status"] == "awaiting_stock" and retried.headers["ETag"] != current
    done = admin.post_json(f"{url}/cancel", {}, headers={"If-Match": retried.headers["ETag"]})
    assert done.json["status"] == "cancelled"

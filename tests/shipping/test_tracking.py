"""Tracking events recorded by staff (carrier webhooks: see test_webhook)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from logistics_shared.outbox import Outbox
from shipping.domain import lifecycle, shipments

from ..inventory.conftest import ADDRESS

ORDER = {
    "reference": "T-1",
    "warehouse": "AMS",
    "ship_to": ADDRESS,
    "lines": [{"sku": "SKU-1", "quantity": 1}],
}


def labelled(client) -> str:
    """A shipment moved to label_purchased through the domain, as the saga and a label would."""
    shipment = client.as_().post_json("/v1/shipments", ORDER).json
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session, session.begin():
        outbox = Outbox(session, table, producer="shipping")
        shipments.on_stock_reserved(
            session, outbox, {"reference": shipment["id"], "reservation_id": str(uuid.uuid4())}, "test"
        )
    with factory() as session, session.begin():
        current = shipments.load_for_update(session, shipment["id"], None)
        lifecycle.transition(session, current, "label_purchased", cause="test")
    return shipment["id"]


def events(client) -> list[str]:
    with client.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def test_staff_events_move_the_shipment_and_emit(ship):
    shipment_id = labelled(ship)
    staff = ship.as_("warehouse_staff", "AMS")
    moved = staff.post_json(
        f"/v1/shipments/{shipment_id}/tracking",
        {"status": "in_transit", "location": "Rotterdam hub"},
        status=201,
    ).json
    assert moved["status"] == "in_transit"
    assert moved["tracking"][0]["location"] == "Rotterdam hub"
    assert moved["tracking"][0]["source"] == "staff"
    staff.post_json(
        f"/v1/shipments/{shipment_id}/tracking",
        {"status": "delivered", "occurred_at": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()},
        status=201,
    )
    res = staff.post_json(f"/v1/shipments/{shipment_id}/tracking", {"status": "in_transit"}, status=409)
    assert res.json["current_status"] == "delivered"
    assert events(ship).count("shipment.delivered") == 1
    assert events(ship).count("shipment.status_changed") == 2
    final = ship.as_().get(f"/v1/shipments/{shipment_id}").json
    assert [h["to_status"] for h in final["history"]][-3:] == ["label_purchased", "in_transit", "delivered"]


def test_tracking_needs_a_label_first_and_valid_input(ship):
    shipment = ship.as_().post_json("/v1/shipments", ORDER).json
    res = ship.as_().post_json(
        f"/v1/shipments/{shipment['id']}/tracking", {"status": "in_transit"}, status=409
    )
    assert res.json["current_status"] == "awaiting_stock"
    ship.as_().post_json(f"/v1/shipments/{shipment['id']}/tracking", {"status": "teleported"}, status=422)
    ship.as_("support_agent").post_json(
        f"/v1/shipments/{shipment['id']}/tracking", {"status": "in_transit"}, status=403
    )
    ship.as_("warehouse_staff", "RTM").post_json(
        f"/v1/shipments/{shipment['id']}/tracking", {"status": "in_transit"}, status=404
    )
    assert ship.as_().get(f"/v1/shipments/{shipment['id']}").json["tracking"] == []

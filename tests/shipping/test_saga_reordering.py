"""Saga steps delivered out of order: every handler tolerates it (deterministic,
without a broker: envelopes are carried from one service's outbox to the other's
handlers by hand).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from inventory import handlers as inventory_handlers
from shipping import handlers as shipping_handlers

from ..helpers.shipping import (
    deliver,
    emitted,
)
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import ADDRESS, receive, seed


def reserved(inv):
    return inv.as_().get("/v1/stock", {"sku": "SKU-1", "warehouse": "AMS"}).json["items"][0]["reserved"]


def test_cancel_arriving_before_the_request_leaves_nothing_reserved(service_client):
    inv = service_client("inventory")
    ship = service_client("shipping")
    seed(inv)
    receive(inv, "AMS", "SKU-1", 5)
    body = {
        "reference": "R",
        "warehouse": "AMS",
        "ship_to": ADDRESS,
        "lines": [{"sku": "SKU-1", "quantity": 2}],
    }
    shipment = ship.as_().post_json("/v1/shipments", body).json
    ship.as_().post_json(f"/v1/shipments/{shipment['id']}/cancel", {})
    (requested,) = emitted(ship, "shipment.requested")
    (cancelled,) = emitted(ship, "shipment.cancelled")

    deliver(inv, "inventory", inventory_handlers.shipment_cancelled, cancelled)  # overtakes
    deliver(inv, "inventory", inventory_handlers.shipment_requested, requested)
    assert reserved(inv) == 2
    (stock_reserved,) = emitted(inv, "stock.reserved")
    deliver(ship, "shipping", shipping_handlers.stock_reserved, stock_reserved)
    # Shipping is cancelled, so it says so again; inventory now releases.
    second_cancel = emitted(ship, "shipment.cancelled")[-1]
    assert second_cancel["causation_id"] == str(stock_reserved["id"])
    deliver(inv, "inventory", inventory_handlers.shipment_cancelled, second_cancel)
    assert reserved(inv) == 0
    assert ship.as_().get(f"/v1/shipments/{shipment['id']}").json["status"] == "cancelled"
    assert_inventory_invariants(inv.engine)


def test_stale_answers_do_not_move_a_shipment(service_client):
    inv = service_client("inventory")
    ship = service_client("shipping")
    seed(inv)
    body = {
        "reference": "R",
        "warehouse": "AMS",
        "ship_to": ADDRESS,
        "lines": [{"sku": "SKU-1", "quantity": 2}],
    }
    shipment = ship.as_().post_json("/v1/shipments", body).json
    (requested,) = emitted(ship, "shipment.requested")
    deliver(inv, "inventory", inventory_handlers.shipment_requested, requested)  # no stock: failure
    (failed,) = emitted(inv, "stock.reservation_failed")
    deliver(ship, "shipping", shipping_handlers.reservation_failed, failed)
    assert ship.as_().get(f"/v1/shipments/{shipment['id']}").json["status"] == "on_hold"
    deliver(ship, "shipping", shipping_handlers.reservation_failed, failed)  # again, later: no effect
    history = ship.as_().get(f"/v1/shipments/{shipment['id']}").json["history"]
    assert [h["to_status"] for h in history] == ["awaiting_stock", "on_hold"]


def test_cancel_after_the_label_puts_the_issued_stock_back_once(service_client):
    import uuid

    inv = service_client("inventory")
    seed(inv)
    receive(inv, "AMS", "SKU-1", 5)
    shipment_id = str(uuid.uuid4())
    requested = {
        "id": uuid.uuid4(),
        "type": "shipment.requested",
        "correlation_id": "c",
        "data": {
            "shipment_id": shipment_id,
            "reference": "R",
            "warehouse": "AMS",
            "lines": [{"sku": "SKU-1", "quantity": 2}],
            "hold_until": None,
        },
    }
    deliver(inv, "inventory", inventory_handlers.shipment_requested, requested)
    label = {
        "id": uuid.uuid4(),
        "type": "shipment.label_purchased",
        "correlation_id": "c",
        "data": {"shipment_id": shipment_id},
    }
    deliver(inv, "inventory", inventory_handlers.shipment_label_purchased, label)
    level = inv.as_().get("/v1/stock", {"sku": "SKU-1", "warehouse": "AMS"}).json["items"][0]
    assert (level["on_hand"], level["reserved"]) == (3, 0)
    cancelled = {
        "id": uuid.uuid4(),
        "type": "shipment.cancelled",
        "correlation_id": "c",
        "data": {"shipment_id": shipment_id, "reference": "R", "warehouse": "AMS", "reason": None},
    }
    deliver(inv, "inventory", inventory_handlers.shipment_cancelled, cancelled)
    # A second cancel (a re-sent one, with another event id) must not restock twice.
    deliver(inv, "inventory", inventory_handlers.shipment_cancelled, {**cancelled, "id": uuid.uuid4()})
    level = inv.as_().get("/v1/stock", {"sku": "SKU-1", "warehouse": "AMS"}).json["items"][0]
    assert (level["on_hand"], level["reserved"]) == (5, 0)
    restocks = [
        m
        for m in inv.as_().get("/v1/movements", {"kind": "receipt"}).json["items"]
        if (m["reference"] or "").startswith("restock:")
    ]
    assert [m["quantity"] for m in restocks] == [2]
    assert_inventory_invariants(inv.engine)


def _requested(shipment_id: str, quantity: int) -> dict:
    import uuid

    return {
        "id": uuid.uuid4(),
        "type": "shipment.requested",
        "correlation_id": "c",
        "data": {
            "shipment_id": shipment_id,
            "reference": "R",
            "warehouse": "AMS",
            "lines": [{"sku": "SKU-1", "quantity": quantity}],
            "hold_until": None,
        },
    }


def _expire_all(inv) -> None:
    from datetime import UTC, datetime, timedelta

    from inventory.domain.sweeper import sweep_expired

    with inv.engine.begin() as conn:
        conn.execute(
            text("UPDATE reservations SET expires_at = :t"), {"t": datetime.now(UTC) - timedelta(seconds=1)}
        )
    sweep_expired(inv.registry["dbsession_factory"], producer="inventory")


@pytest.mark.parametrize(("stock", "issued"), [(5, True), (1, False)])
def test_a_label_bought_as_the_hold_expired_still_issues_or_reports_the_shortage(
    service_client, stock, issued
):
    import uuid

    inv = service_client("inventory")
    seed(inv)
    receive(inv, "AMS", "SKU-1", 2)
    shipment_id = str(uuid.uuid4())
    deliver(inv, "inventory", inventory_handlers.shipment_requested, _requested(shipment_id, 2))
    _expire_all(inv)
    # Meanwhile someone else takes stock, so only `stock` units are left to re-reserve.
    inv.as_().post_json(
        "/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "counted": stock, "reason": "count"}
    )
    label = {
        "id": uuid.uuid4(),
        "type": "shipment.label_purchased",
        "correlation_id": "c",
        "data": {"shipment_id": shipment_id},
    }
    deliver(inv, "inventory", inventory_handlers.shipment_label_purchased, label)
    deliver(
        inv, "inventory", inventory_handlers.shipment_label_purchased, {**label, "id": uuid.uuid4()}
    )  # a replay
    level = inv.as_().get("/v1/stock", {"sku": "SKU-1", "warehouse": "AMS"}).json["items"][0]
    if issued:
        assert (level["on_hand"], level["reserved"]) == (stock - 2, 0)
        assert len(emitted(inv, "stock.issued")) == 1
    else:
        assert (level["on_hand"], level["reserved"]) == (stock, 0)
        failures = emitted(inv, "stock.reservation_failed")
        assert failures
        assert "hold expired" in failures[-1]["data"]["detail"]
    assert_inventory_invariants(inv.engine)

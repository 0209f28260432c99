"""The fulfilment saga end to end: shipping and inventory workers on the
machine's RabbitMQ, each service on its own PostgreSQL database.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from logistics_shared.bus.worker import Worker

from ..helpers.bus import wait_until
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import ADDRESS, receive, seed

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

FAST = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 3, "db_pool_size": 30}


@pytest.fixture
def suite(service_client, specs, rabbit, namespace):
    inv = service_client("inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    ship = service_client("shipping", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    seed(inv)
    workers = [
        Worker(specs["inventory"], inv.settings, inv.registry, periodic=False),
        Worker(specs["shipping"], ship.settings, ship.registry),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        wait_until(lambda w=worker: w.readiness()["status"] == "ready", what="workers ready")
    yield inv, ship
    for worker in workers:
        worker.shutdown()


def order(lines, warehouse="AMS", reference="ORDER"):
    return {
        "reference": reference,
        "warehouse": warehouse,
        "ship_to": ADDRESS,
        "lines": [{"sku": s, "quantity": q} for s, q in lines],
    }


def status_of(ship, shipment_id):
    return ship.as_().get(f"/v1/shipments/{shipment_id}").json["status"]


def level(inv, sku="SKU-1"):
    return inv.as_().get("/v1/stock", {"sku": sku, "warehouse": "AMS"}).json["items"][0]


def test_happy_path_reserves_and_marks_ready(suite):
    inv, ship = suite
    receive(inv, "AMS", "SKU-1", 5)
    shipment = ship.as_().post_json("/v1/shipments", order([("SKU-1", 3)])).json
    wait_until(lambda: status_of(ship, shipment["id"]) == "ready", what="ready")
    current = ship.as_().get(f"/v1/shipments/{shipment['id']}").json
    assert [h["to_status"] for h in current["history"]] == ["awaiting_stock", "ready"]
    assert current["history"][1]["cause"].startswith("event:stock.reserved:")
    reservation = inv.as_().get(f"/v1/reservations/{current['reservation_id']}").json
    assert reservation["reference"] == shipment["id"]
    assert level(inv)["reserved"] == 3
    assert_inventory_invariants(inv.engine)


def test_shortage_puts_it_on_hold_and_a_retry_after_a_receipt_makes_it_ready(suite):
    inv, ship = suite
    receive(inv, "AMS", "SKU-1", 1)
    shipment = ship.as_().post_json("/v1/shipments", order([("SKU-1", 3)])).json
    wait_until(lambda: status_of(ship, shipment["id"]) == "on_hold", what="on hold")
    held = ship.as_().get(f"/v1/shipments/{shipment['id']}").json
    assert "requested 3, available 1" in held["hold_reason"]
    assert level(inv)["reserved"] == 0
    receive(inv, "AMS", "SKU-1", 5)
    ship.as_().post(f"/v1/shipments/{shipment['id']}/retry", status=200)
    wait_until(lambda: status_of(ship, shipment["id"]) == "ready", what="ready after retry")
    assert level(inv)["reserved"] == 3
    assert_inventory_invariants(inv.engine)


def test_cancel_releases_the_stock(suite):
    inv, ship = suite
    receive(inv, "AMS", "SKU-1", 5)
    shipment = ship.as_().post_json("/v1/shipments", order([("SKU-1", 4)])).json
    wait_until(lambda: status_of(ship, shipment["id"]) == "ready", what="ready")
    ship.as_().post_json(f"/v1/shipments/{shipment['id']}/cancel", {"reason": "duplicate order"})
    wait_until(lambda: level(inv)["reserved"] == 0, what="released")
    reservations = inv.as_().get("/v1/reservations", {"reference": shipment["id"]}).json["items"]
    assert [r["status"] for r in reservations] == ["released"]
    assert_inventory_invariants(inv.engine)


def test_an_immediate_cancel_leaves_nothing_reserved(suite):
    inv, ship = suite
    receive(inv, "AMS", "SKU-1", 5)
    shipment = ship.as_().post_json("/v1/shipments", order([("SKU-1", 2)])).json
    ship.as_().post_json(f"/v1/shipments/{shipment['id']}/cancel", {})
    # Inventory sees the request and the cancel on two queues, in either order;
    # if the reservation lands after the cancel, shipping re-sends the cancel.
    wait_until(
        lambda: (
            inv.as_().get("/v1/reservations", {"reference": shipment["id"]}).json["items"]
            and level(inv)["reserved"] == 0
        ),
        what="no stock left reserved",
    )
    assert status_of(ship, shipment["id"]) == "cancelled"
    assert_inventory_invariants(inv.engine)


def test_reservation_expiry_puts_a_ready_shipment_on_hold(suite):
    inv, ship = suite
    receive(inv, "AMS", "SKU-1", 5)
    shipment = ship.as_().post_json("/v1/shipments", order([("SKU-1", 2)])).json
    wait_until(lambda: status_of(ship, shipment["id"]) == "ready", what="ready")
    with inv.engine.begin() as conn:
        conn.execute(
            text("UPDATE reservations SET expires_at = :t WHERE reference = :r"),
            {"t": datetime.now(UTC) - timedelta(seconds=1), "r": shipment["id"]},
        )
    from inventory.domain.sweeper import sweep_expired

    assert sweep_expired(inv.registry["dbsession_factory"], producer="inventory") == 1
    wait_until(lambda: status_of(ship, shipment["id"]) == "on_hold", what="on hold after expiry")
    held = ship.as_().get(f"/v1/shipments/{shipment['id']}").json
    assert held["reservation_id"] is None
    assert "expired" in held["hold_reason"]
    assert level(inv)["reserved"] == 0


def test_a_hundred_shipments_against_stock_for_fifty(suite):
    inv, ship = suite
    receive(inv, "AMS", "SKU-1", 50)
    staff = ship.as_("warehouse_staff", "AMS")

    def create(i):
        return staff.post_json("/v1/shipments", order([("SKU-1", 1)], reference=f"O-{i}")).json["id"]

    with ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(create, range(100)))

    def settled():
        rows = ship.as_().get("/v1/shipments", {"limit": 200}).json["items"]
        return sum(r["status"] in ("ready", "on_hold") for r in rows) == 100

    wait_until(settled, timeout=90, what="every shipment ready or on hold")
    rows = ship.as_().get("/v1/shipments", {"limit": 200}).json["items"]
    statuses = sorted(r["status"] for r in rows if r["id"] in set(ids))
    assert statuses.count("ready") == 50
    assert statuses.count("on_hold") == 50
    assert level(inv) | {} == {
        "sku": "SKU-1",
        "warehouse": "AMS",
        "on_hand": 50,
        "reserved": 50,
        "available": 0,
    }
    assert_inventory_invariants(inv.engine)

"""The catalogue read model end to end: inventory's item and warehouse events reach
shipping's read model over the machine's RabbitMQ, its consumer marks the queue drained,
and POST /v1/shipments rejects unknown SKUs only then; while it lags (its worker down, the
events queued) shipments are accepted and the saga decides, as before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from logistics_shared.bus.worker import Worker

from ..helpers.bus import wait_until
from ..inventory.conftest import ADDRESS, receive, seed

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

FAST = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 3, "db_pool_size": 10}


@pytest.fixture
def suite(service_client, specs, rabbit, namespace):
    inv = service_client("inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    ship = service_client("shipping", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    # Shipping's worker first: its queues must exist before inventory's first event.
    workers = {"shipping": Worker(specs["shipping"], ship.settings, ship.registry)}
    workers["inventory"] = Worker(specs["inventory"], inv.settings, inv.registry, periodic=False)
    for worker in workers.values():
        worker.start()
        wait_until(lambda w=worker: w.readiness()["status"] == "ready", what="workers ready")
    seed(inv)
    yield inv, ship, workers
    for worker in workers.values():
        worker.shutdown()


def drained_at(ship):
    with ship.engine.connect() as conn:
        return conn.execute(text("SELECT drained_at FROM drain_marks WHERE handler = 'catalogue'")).scalar()


def known_skus(ship):
    with ship.engine.connect() as conn:
        return {row[0] for row in conn.execute(text("SELECT sku FROM catalogue_items"))}


def synced(ship, skus=("SKU-1", "SKU-2")):
    mark = drained_at(ship)
    fresh = mark is not None and datetime.now(UTC) - mark < timedelta(seconds=3)
    return fresh and set(skus) <= known_skus(ship)


def order(*lines, reference="ORDER"):
    return {
        "reference": reference,
        "warehouse": "AMS",
        "ship_to": ADDRESS,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


def shipment(ship, shipment_id):
    return ship.as_().get(f"/v1/shipments/{shipment_id}").json


def test_a_drained_read_model_rejects_a_typo_and_derives_the_parcel(suite):
    inv, ship, _ = suite
    wait_until(lambda: synced(ship), what="catalogue synced and drained")
    res = ship.as_().post_json("/v1/shipments", order(("TEE-M", 1)), status=422)
    assert res.json["errors"] == [{"pointer": "/lines/0/sku", "detail": "Unknown SKU 'TEE-M'."}]

    receive(inv, "AMS", "SKU-1", 5)
    made = ship.as_().post_json("/v1/shipments", order(("SKU-1", 2)), status=201).json
    # seed(): 250 g, 100 x 50 x 20 mm each; two stacked.
    assert made["parcels"] == [{"weight_g": 500, "length_mm": 100, "width_mm": 50, "height_mm": 40}]
    wait_until(lambda: shipment(ship, made["id"])["status"] == "ready", what="ready")

    # A change in inventory reaches the read model, and the mark again.
    inv.as_().patch_json("/v1/items/SKU-1", {"unit_weight_g": 300}, status=200)
    inv.as_().patch_json("/v1/warehouses/AMS", {"address": {**ADDRESS, "phone": "+31 10 000"}}, status=200)

    def updated():
        with ship.engine.connect() as conn:
            weight = conn.execute(
                text("SELECT unit_weight_g FROM catalogue_items WHERE sku = 'SKU-1'")
            ).scalar()
            phone = conn.execute(text("SELECT phone FROM catalogue_warehouses WHERE code = 'AMS'")).scalar()
        return weight == 300 and phone == "+31 10 000" and synced(ship)

    wait_until(updated, what="the updates applied")


def test_while_the_read_model_lags_shipments_are_accepted_and_the_saga_decides(suite, specs):
    inv, ship, workers = suite
    wait_until(lambda: synced(ship), what="catalogue synced and drained")
    workers["shipping"].shutdown()  # its consumer clears the mark as it stops
    assert drained_at(ship) is None

    # An item created now: its event waits in shipping's queue.
    inv.as_().post_json(
        "/v1/items",
        {
            "sku": "NEW-1",
            "name": "New",
            "unit_weight_g": 100,
            "length_mm": 10,
            "width_mm": 10,
            "height_mm": 10,
        },
        status=201,
    )
    fresh = ship.as_().post_json("/v1/shipments", order(("NEW-1", 1), reference="FRESH"), status=201).json
    typo = ship.as_().post_json("/v1/shipments", order(("TYPO-1", 1), reference="TYPO"), status=201).json
    assert fresh["parcels"] == [] and typo["parcels"] == []  # NEW-1 is not known to shipping yet

    workers["shipping"] = Worker(specs["shipping"], ship.settings, ship.registry)
    workers["shipping"].start()
    # The saga as it always was: inventory answers, the shipments go on hold.
    wait_until(lambda: shipment(ship, typo["id"])["status"] == "on_hold", what="typo on hold")
    assert "TYPO-1" in shipment(ship, typo["id"])["hold_reason"]
    wait_until(lambda: shipment(ship, fresh["id"])["status"] == "on_hold", what="no stock: on hold")
    assert "requested 1, available 0" in shipment(ship, fresh["id"])["hold_reason"]

    # Caught up: the queued item is known, and a typo is a 422 again.
    wait_until(lambda: synced(ship, ("SKU-1", "SKU-2", "NEW-1")), what="catalogue drained again")
    ship.as_().post_json("/v1/shipments", order(("TYPO-1", 1), reference="TYPO-2"), status=422)
    ship.as_().post_json("/v1/shipments", order(("NEW-1", 1), reference="FRESH-2"), status=201)

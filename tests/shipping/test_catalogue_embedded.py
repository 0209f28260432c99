"""The catalogue read model on the embedded default (``logistics up``: SQLite, the in-process
memory:// bus). There the read model is never "drained" (no drain marks: the producer's
relay and the in-memory transport both poll, so an event can take over a second, and a
script that creates an item and ships it at once must not be refused): a typo is accepted
and put on hold by the saga, as before, while parcels still come from the items it knows."""

from __future__ import annotations

import pytest

from ..embedded import call, eventually, logistics_up
from ..inventory.conftest import ADDRESS

pytestmark = pytest.mark.e2e

ITEM = {"sku": "MUG", "name": "Mug", "unit_weight_g": 300, "length_mm": 120, "width_mm": 90, "height_mm": 100}


def test_the_catalogue_reaches_shipping_on_logistics_up_and_nothing_is_refused(tmp_path):
    with logistics_up(tmp_path) as up:
        inv, ship = up.url("inventory"), up.url("shipping")
        token = up.token("--role", "admin")
        warehouse = {"code": "AMS", "name": "Rotterdam", "address": {**ADDRESS, "phone": "+31 10 555 0000"}}
        assert call("POST", f"{inv}/v1/warehouses", token, warehouse)[0] == 201
        assert call("POST", f"{inv}/v1/items", token, ITEM)[0] == 201

        def order(sku, reference):
            body = {
                "reference": reference,
                "warehouse": "AMS",
                "ship_to": ADDRESS,
                "lines": [{"sku": sku, "quantity": 2}],
            }
            status, made = call("POST", f"{ship}/v1/shipments", token, body)
            assert status == 201, made  # at once after the item, and for a typo too
            return made

        order("MUG", "AT-ONCE")
        typo = order("MUG-TYPO", "TYPO")

        def status_of(shipment_id):
            return call("GET", f"{ship}/v1/shipments/{shipment_id}", token)[1]["status"]

        eventually(lambda: status_of(typo["id"]) == "on_hold", what="the saga puts the typo on hold")

        def derived():
            made = order("MUG", "LATER")
            return made["parcels"] == [{"weight_g": 600, "length_mm": 120, "width_mm": 90, "height_mm": 200}]

        eventually(derived, what="a parcel derived from the item once shipping knows it")

"""The saga on the embedded default, driven over HTTP as a user would:
``logistics up`` (SQLite files, in-process memory:// bus) in a subprocess.
"""

from __future__ import annotations

import pytest

from ..embedded import call, eventually, logistics_up
from ..inventory.conftest import ADDRESS

# Real processes end to end.
pytestmark = pytest.mark.e2e


def test_saga_over_http_on_logistics_up(tmp_path):
    with logistics_up(tmp_path, reservation_sweep_seconds="0.5") as up:
        inv, ship = up.url("inventory"), up.url("shipping")
        token = up.token("--role", "admin")
        assert (
            call(
                "POST",
                f"{inv}/v1/warehouses",
                token,
                {"code": "AMS", "name": "Amsterdam", "address": ADDRESS},
            )[0]
            == 201
        )
        assert (
            call(
                "POST",
                f"{inv}/v1/items",
                token,
                {
                    "sku": "MUG",
                    "name": "Mug",
                    "unit_weight_g": 300,
                    "length_mm": 1,
                    "width_mm": 1,
                    "height_mm": 1,
                },
            )[0]
            == 201
        )
        assert (
            call("POST", f"{inv}/v1/receipts", token, {"warehouse": "AMS", "sku": "MUG", "quantity": 3})[0]
            == 201
        )

        def order(quantity):
            status, body = call(
                "POST",
                f"{ship}/v1/shipments",
                token,
                {
                    "reference": f"O-{quantity}",
                    "warehouse": "AMS",
                    "ship_to": ADDRESS,
                    "lines": [{"sku": "MUG", "quantity": quantity}],
                },
            )
            assert status == 201, body
            return body["id"]

        def status_of(shipment_id):
            return call("GET", f"{ship}/v1/shipments/{shipment_id}", token)[1]["status"]

        fits, too_big = order(2), order(5)
        eventually(lambda: status_of(fits) == "ready")
        eventually(lambda: status_of(too_big) == "on_hold")
        stock = call("GET", f"{inv}/v1/stock?sku=MUG", token)[1]["items"][0]
        assert (stock["on_hand"], stock["reserved"]) == (3, 2)
        assert call("POST", f"{ship}/v1/shipments/{fits}/cancel", token, {})[0] == 200
        eventually(lambda: call("GET", f"{inv}/v1/stock?sku=MUG", token)[1]["items"][0]["reserved"] == 0)
        assert (
            call("POST", f"{inv}/v1/receipts", token, {"warehouse": "AMS", "sku": "MUG", "quantity": 5})[0]
            == 201
        )
        assert call("POST", f"{ship}/v1/shipments/{too_big}/retry", token)[0] == 200
        eventually(lambda: status_of(too_big) == "ready")

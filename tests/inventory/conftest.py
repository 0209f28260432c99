from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import Client

ADDRESS = {"name": "Main warehouse", "line1": "Dock 1", "city": "Rotterdam", "country": "NL"}


def seed(
    client: Client, warehouses: tuple[str, ...] = ("AMS", "RTM"), skus: tuple[str, ...] = ("SKU-1", "SKU-2")
) -> None:
    admin = client.as_()
    for code in warehouses:
        admin.post_json("/v1/warehouses", {"code": code, "name": f"Warehouse {code}", "address": ADDRESS})
    for sku in skus:
        admin.post_json(
            "/v1/items",
            {
                "sku": sku,
                "name": f"Item {sku}",
                "unit_weight_g": 250,
                "length_mm": 100,
                "width_mm": 50,
                "height_mm": 20,
                "reorder_point": 3,
            },
        )


def receive(client: Client, warehouse: str, sku: str, quantity: int) -> Any:
    return client.as_().post_json("/v1/receipts", {"warehouse": warehouse, "sku": sku, "quantity": quantity})


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def inv(service_client: Callable[..., Client], backend: str) -> Client:
    """The inventory service on a fresh database, seeded with two warehouses and two items."""
    client = service_client("inventory", backend)
    seed(client)
    return client

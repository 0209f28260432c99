"""Inventory's URL map; each view module registers its ``@endpoint`` views."""

from __future__ import annotations

from pyramid.config import Configurator

from logistics_shared.web.endpoint import add_endpoints

from .views import imports, items, reservations, stock, warehouses


def includeme(config: Configurator) -> None:
    config.add_route("items", "/v1/items")
    config.add_route("item", "/v1/items/{sku}")
    config.add_route("warehouses", "/v1/warehouses")
    config.add_route("warehouse", "/v1/warehouses/{code}")
    config.add_route("locations", "/v1/warehouses/{code}/locations")
    config.add_route("stock", "/v1/stock")
    config.add_route("receipts", "/v1/receipts")
    config.add_route("adjustments", "/v1/adjustments")
    config.add_route("transfers", "/v1/transfers")
    config.add_route("movements", "/v1/movements")
    config.add_route("reservations", "/v1/reservations")
    config.add_route("reservation", "/v1/reservations/{id}")
    config.add_route("reservation_release", "/v1/reservations/{id}/release")
    config.add_route("reservation_consume", "/v1/reservations/{id}/consume")
    config.add_route("imports", "/v1/imports")
    config.add_route("import", "/v1/imports/{id}")
    config.add_route("import_errors", "/v1/imports/{id}/errors")
    for module in (items, warehouses, stock, reservations, imports):
        add_endpoints(config, module)

"""Shipping's URL map; each view module registers its ``@endpoint`` views."""

from __future__ import annotations

from pyramid.config import Configurator

from logistics_shared.web.endpoint import add_endpoints

from .views import shipments


def includeme(config: Configurator) -> None:
    config.add_route("shipments", "/v1/shipments")
    config.add_route("shipment", "/v1/shipments/{id}")
    config.add_route("shipment_cancel", "/v1/shipments/{id}/cancel")
    config.add_route("shipment_retry", "/v1/shipments/{id}/retry")
    add_endpoints(config, shipments)
    config.include("shipping.routes_labels")
    config.include("shipping.routes_tracking")

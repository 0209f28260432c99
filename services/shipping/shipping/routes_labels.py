"""Routes of carriers, rates and labels."""

from __future__ import annotations

from pyramid.config import Configurator

from logistics_shared.web.endpoint import add_endpoints

from .views import carriers, labels


def includeme(config: Configurator) -> None:
    """Carrier, rate and label routes are registered here."""
    config.add_route("carriers", "/v1/carriers")
    config.add_route("carrier", "/v1/carriers/{code}")
    config.add_route("carrier_services", "/v1/carriers/{code}/services")
    config.add_route("carrier_service", "/v1/carriers/{code}/services/{service}")
    config.add_route("shipment_rates", "/v1/shipments/{id}/rates")
    config.add_route("shipment_label", "/v1/shipments/{id}/label")
    add_endpoints(config, carriers)
    add_endpoints(config, labels)

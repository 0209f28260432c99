"""Routes of tracking: staff events, carrier webhooks, lookups by tracking number."""

from __future__ import annotations

from pyramid.config import Configurator

from logistics_shared.web.endpoint import add_endpoints

from .views import tracking


def includeme(config: Configurator) -> None:
    config.add_route("shipment_tracking", "/v1/shipments/{id}/tracking")
    config.add_route("carrier_webhook", "/v1/carriers/{carrier}/webhook")
    config.add_route("tracking_lookup", "/v1/tracking/{number}")
    add_endpoints(config, tracking)

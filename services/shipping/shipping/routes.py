"""Shipping's URL map: every route, and every view module's ``@endpoint`` views."""

from __future__ import annotations

from pyramid.config import Configurator

from logistics_shared.web.endpoint import add_endpoints
from logistics_shared.webhooks.routes import add_webhook_routes

from .permissions import Permission
from .views import carriers, labels, shipments, tracking


def includeme(config: Configurator) -> None:
    # Shipments and their saga.
    config.add_route("shipments", "/v1/shipments")
    config.add_route("shipment", "/v1/shipments/{id}")
    config.add_route("shipment_cancel", "/v1/shipments/{id}/cancel")
    config.add_route("shipment_retry", "/v1/shipments/{id}/retry")
    add_endpoints(config, shipments)
    # Carriers, their services and rate tables; quotes and labels.
    config.add_route("carriers", "/v1/carriers")
    config.add_route("carrier", "/v1/carriers/{code}")
    config.add_route("carrier_services", "/v1/carriers/{code}/services")
    config.add_route("carrier_service", "/v1/carriers/{code}/services/{service}")
    config.add_route("shipment_rates", "/v1/shipments/{id}/rates")
    config.add_route("shipment_label", "/v1/shipments/{id}/label")
    add_endpoints(config, carriers)
    add_endpoints(config, labels)
    # Tracking: staff events, carrier webhooks, lookups by tracking number.
    config.add_route("shipment_tracking", "/v1/shipments/{id}/tracking")
    config.add_route("carrier_webhook", "/v1/carriers/{carrier}/webhook")
    config.add_route("tracking_lookup", "/v1/tracking/{number}")
    add_endpoints(config, tracking)
    # Outbound webhooks: /v1/shipping/webhook-endpoints and their delivery log.
    add_webhook_routes(config, "shipping", Permission.WEBHOOKS_MANAGE)

"""Routes of tracking: staff events (carrier webhooks and lookups join them)."""

from __future__ import annotations

from pyramid.config import Configurator

from logistics_shared.web.endpoint import add_endpoints

from .views import tracking


def includeme(config: Configurator) -> None:
    config.add_route("shipment_tracking", "/v1/shipments/{id}/tracking")
    add_endpoints(config, tracking)

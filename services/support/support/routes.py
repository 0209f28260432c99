"""Support's URL map; each view module registers its ``@endpoint`` views."""

from __future__ import annotations

from pyramid.config import Configurator

from logistics_shared.web.endpoint import add_endpoints
from logistics_shared.webhooks.routes import add_webhook_routes

from .permissions import Permission
from .views import shipments, sla, tickets


def includeme(config: Configurator) -> None:
    config.add_route("tickets", "/v1/tickets")
    config.add_route("ticket", "/v1/tickets/{id}")
    config.add_route("ticket_comments", "/v1/tickets/{id}/comments")
    config.add_route("shipments", "/v1/shipments")
    config.add_route("shipment", "/v1/shipments/{id}")
    config.add_route("sla_policies", "/v1/sla-policies")
    config.add_route("sla_policy", "/v1/sla-policies/{priority}")
    add_endpoints(config, tickets)
    add_endpoints(config, shipments)
    add_endpoints(config, sla)
    # Outbound webhooks: /v1/support/webhook-endpoints and their delivery log.
    add_webhook_routes(config, "support", Permission.WEBHOOKS_MANAGE)

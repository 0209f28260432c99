"""The webhook subscriptions API of a service, under ``/v1/<service>/...``.

The front door routes by a path's first segment after ``/v1/``; shipping and support
both offer webhooks, so each service's collection carries the service's name.
"""

from __future__ import annotations

from pyramid.config import Configurator


def manage_permission(service: str) -> str:
    """The permission every webhook route of ``service`` requires (its ``WEBHOOKS_MANAGE``)."""
    return f"{service}:webhooks:manage"


def add_webhook_routes(config: Configurator, service: str, permission: str | None = None) -> None:
    from .views import build_views

    base = f"/v1/{service}"
    endpoint = f"{base}/webhook-endpoints/{{id}}"
    config.add_route("webhook_endpoints", f"{base}/webhook-endpoints")
    config.add_route("webhook_endpoint", endpoint)
    config.add_route("webhook_endpoint_rotate_secret", f"{endpoint}/rotate-secret")
    config.add_route("webhook_endpoint_ping", f"{endpoint}/ping")
    config.add_route("webhook_deliveries", f"{endpoint}/deliveries")
    config.add_route("webhook_delivery", f"{endpoint}/deliveries/{{delivery_id}}")
    config.add_route("webhook_delivery_redeliver", f"{endpoint}/deliveries/{{delivery_id}}/redeliver")
    config.add_route("webhook_redeliver_failed", f"{endpoint}/redeliver-failed")
    config.add_route("webhook_event_types", f"{base}/webhook-event-types")
    for view in build_views(service, permission or manage_permission(service)):
        meta = view.__api__  # type: ignore[attr-defined]
        config.add_view(view, route_name=meta.route, request_method=meta.method, permission=meta.permission)

"""The shipping service's permissions and which roles hold them (admins hold all)."""

from __future__ import annotations

import enum

from logistics_shared.identity import Role


class Permission(enum.StrEnum):
    SHIPMENTS_READ = "shipping:shipments:read"
    SHIPMENTS_WRITE = "shipping:shipments:write"
    #: Carriers, services and rate tables: only admins (who hold every permission).
    CARRIERS_WRITE = "shipping:carriers:write"
    #: Webhook subscriptions (logistics_shared.webhooks.routes.manage_permission names it).
    WEBHOOKS_MANAGE = "shipping:webhooks:manage"


def role_permissions() -> dict[Role, frozenset[str]]:
    read = frozenset({Permission.SHIPMENTS_READ})
    return {
        # Staff create and manage shipments of their warehouses (checked in the domain).
        # Staff also subscribe endpoints to their warehouses' events (scoped in the domain).
        Role.WAREHOUSE_STAFF: read | {Permission.SHIPMENTS_WRITE, Permission.WEBHOOKS_MANAGE},
        Role.SUPPORT_AGENT: read,
        Role.SERVICE: read | {Permission.SHIPMENTS_WRITE},
    }

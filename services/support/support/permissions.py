"""The support service's permissions and which roles hold them (admins hold all)."""

from __future__ import annotations

import enum

from logistics_shared.identity import Role


class Permission(enum.StrEnum):
    SUPPORT_READ = "support:tickets:read"
    SUPPORT_WRITE = "support:tickets:write"
    #: The support desk's own views: the shipment read model and the SLA policies.
    DESK_READ = "support:desk:read"
    #: Editing SLA policies: only admins (who hold every permission).
    SLA_WRITE = "support:sla:write"
    #: Webhook subscriptions (logistics_shared.webhooks.routes.manage_permission names it).
    WEBHOOKS_MANAGE = "support:webhooks:manage"


def role_permissions() -> dict[Role, frozenset[str]]:
    read = frozenset({Permission.SUPPORT_READ, Permission.DESK_READ})
    return {
        Role.SUPPORT_AGENT: read | {Permission.SUPPORT_WRITE, Permission.WEBHOOKS_MANAGE},
        # Staff read tickets linked to their warehouses' shipments (scoped in the domain)
        # and nothing else: their shipments they see in shipping itself.
        Role.WAREHOUSE_STAFF: frozenset({Permission.SUPPORT_READ}),
        Role.SERVICE: read,
    }

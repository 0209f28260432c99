"""The support service as the ``logistics`` CLI sees it (entry point)."""

from __future__ import annotations

from logistics_shared.service import ServiceSpec, lazy

SERVICE = ServiceSpec(
    name="support",
    port=6543,
    description="Tickets, comments, SLAs and a read model of shipments built from events.",
    migrations="support:migrations",
    configure=lazy("support:configure"),
    metadata=lazy("support.models:get_metadata"),
    role_permissions=lazy("support.permissions:role_permissions"),
    handlers=lazy("support.handlers:handlers"),
)

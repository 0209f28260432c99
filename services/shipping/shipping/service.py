"""The shipping service as the ``logistics`` CLI sees it (entry point)."""

from __future__ import annotations

from logistics_shared.service import ServiceSpec, lazy

SERVICE = ServiceSpec(
    name="shipping",
    port=6542,
    description="Shipments, parcels, carriers and rate tables, labels, tracking events.",
    migrations="shipping:migrations",
    configure=lazy("shipping:configure"),
    metadata=lazy("shipping.models:get_metadata"),
    role_permissions=lazy("shipping.permissions:role_permissions"),
    handlers=lazy("shipping.handlers:handlers"),
    demo=lazy("shipping.demo:load"),
)

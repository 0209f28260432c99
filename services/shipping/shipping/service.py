"""The shipping service as the ``logistics`` CLI sees it (entry point)."""

from __future__ import annotations

from logistics_shared.service import ServiceSpec, lazy

from .settings import ShippingSettings

SERVICE = ServiceSpec(
    settings=ShippingSettings,
    name="shipping",
    port=6542,
    description="Shipments, parcels, carriers and rate tables, labels, tracking events.",
    migrations="shipping:migrations",
    configure=lazy("shipping:configure"),
    metadata=lazy("shipping.models:get_metadata"),
    role_permissions=lazy("shipping.permissions:role_permissions"),
    handlers=lazy("shipping.handlers:handlers"),
    # POST /v1/shipments checks SKUs and warehouses against the catalogue only while its
    # consumer is drained (shipping.domain.catalogue): that consumer keeps drain marks.
    drain_watch=lazy("shipping.handlers:drain_watch"),
    demo=lazy("shipping.demo:load"),
    stored_secrets=lazy("shipping.models.carrier:stored_secrets"),
    # Carriers authenticate their webhook with an HMAC of the body, not a bearer token.
    security_schemes={
        "carrier_signature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Carrier-Signature",
            "description": '"sha256=" + hex HMAC-SHA256 of "<X-Carrier-Timestamp>." + the raw body, '
            "keyed with the carrier's webhook secret.",
        },
        "carrier_timestamp": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Carrier-Timestamp",
            "description": "Unix seconds when the carrier signed; more than 5 minutes off is a 401.",
        },
    },
)

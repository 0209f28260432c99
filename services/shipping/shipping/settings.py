"""Settings only shipping reads (the shared ones are in ``logistics_shared.settings``)."""

from __future__ import annotations

from dataclasses import dataclass

from logistics_shared.settings import setting


@dataclass(frozen=True)
class ShippingSettings:
    shipment_hold_hours: float = setting(
        72.0, "How long inventory holds a new shipment's stock, asked by shipping (0: no expiry)."
    )
    catalogue_fresh_seconds: float = setting(
        5.0,
        "How recent the catalogue consumer's drain mark must be for POST /v1/shipments to reject an "
        "unknown SKU or warehouse (422); older, cleared or never written: accepted, the saga decides. "
        "0: never reject.",
    )

"""Settings only inventory reads (the shared ones are in ``logistics_shared.settings``)."""

from __future__ import annotations

from dataclasses import dataclass

from logistics_shared.settings import setting


@dataclass(frozen=True)
class InventorySettings:
    reservation_sweep_seconds: float = setting(
        5.0, "How often expired reservations are swept (inventory's worker).", positive=True
    )

"""Settings only support reads (the shared ones are in ``logistics_shared.settings``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from logistics_shared.settings import SettingsError, setting


@dataclass(frozen=True)
class SupportSettings:
    sla_sweep_seconds: float = setting(
        60.0, "How often the support worker looks for SLA breaches.", positive=True
    )
    sla_breaching_soon_fraction: float = setting(
        0.25,
        "The last share of an SLA target in which a ticket is breaching soon (0.25: the last quarter).",
    )

    def __post_init__(self) -> None:
        # At start-up: a 0 would make "breaching soon" never happen, a 1 always.
        fraction = self.sla_breaching_soon_fraction
        if not (math.isfinite(fraction) and 0 < fraction < 1):
            raise SettingsError(
                "setting 'sla_breaching_soon_fraction' (LOGISTICS_SLA_BREACHING_SOON_FRACTION): "
                f"must be between 0 and 1, both excluded (0.25: the last quarter of a target); got {fraction}"
            )

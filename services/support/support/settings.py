"""Settings only support reads (the shared ones are in ``logistics_shared.settings``)."""

from __future__ import annotations

from dataclasses import dataclass

from logistics_shared.settings import setting


@dataclass(frozen=True)
class SupportSettings:
    sla_sweep_seconds: float = setting(
        60.0, "How often the support worker looks for SLA breaches.", positive=True
    )

"""Settings only inventory reads (the shared ones are in ``logistics_shared.settings``)."""

from __future__ import annotations

from dataclasses import dataclass

from logistics_shared.settings import setting


@dataclass(frozen=True)
class InventorySettings:
    reservation_sweep_seconds: float = setting(
        5.0, "How often expired reservations are swept (inventory's worker).", positive=True
    )
    import_max_bytes: int = setting(
        52_428_800,
        "Largest CSV upload `POST /v1/imports` takes (-> 413); the balancers' limit for that path matches.",
        positive=True,
    )
    import_spool_dir: str = setting(
        "",
        "Where uploaded imports wait for the worker (default: `<var_dir>/imports`); "
        "web and worker processes must share it.",
    )
    import_poll_seconds: float = setting(
        2.0, "How often inventory's worker looks for queued imports.", positive=True
    )
    import_lease_seconds: float = setting(
        120.0,
        "A running import whose worker has not committed a chunk for this long is taken over and resumed.",
        positive=True,
    )
    import_chunk_size: int = setting(
        1000, "Rows per transaction when the worker applies an import (1-10000).", positive=True
    )

    @property
    def max_upload_bytes(self) -> int:
        """The largest body any endpoint of this service reads (the web servers' cap follows it)."""
        return self.import_max_bytes

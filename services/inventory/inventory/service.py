"""The inventory service as the ``logistics`` CLI sees it (entry point)."""

from __future__ import annotations

from typing import Any

from logistics_shared.service import BackgroundTask, ServiceSpec, lazy

from .settings import InventorySettings


def _cli() -> Any:
    from .cli import inventory

    return inventory


def _sweep(registry: Any) -> None:
    from .domain.sweeper import sweep_expired

    sweep_expired(registry["dbsession_factory"], producer="inventory")


def _imports(registry: Any) -> None:
    from datetime import timedelta

    from .domain import import_worker, imports

    settings = registry["logistics.settings"]
    import_worker.process_pending(
        registry["dbsession_factory"],
        imports.spool_dir(settings),
        lease=timedelta(seconds=settings.own.import_lease_seconds),
        chunk_size=settings.own.import_chunk_size,
    )


SERVICE = ServiceSpec(
    settings=InventorySettings,
    name="inventory",
    port=6541,
    description="Items, warehouses and locations, stock levels, the movement ledger, reservations.",
    migrations="inventory:migrations",
    configure=lazy("inventory:configure"),
    metadata=lazy("inventory.models:get_metadata"),
    role_permissions=lazy("inventory.permissions:role_permissions"),
    cli=_cli,
    handlers=lazy("inventory.handlers:handlers"),
    demo=lazy("inventory.demo:load"),
    snapshots=lazy("inventory.domain.catalog:snapshots"),
    background=(
        BackgroundTask(
            name="reservation-sweeper",
            run=_sweep,
            interval=lambda settings: settings.own.reservation_sweep_seconds,
        ),
        # CSV files uploaded to POST /v1/imports, applied in the background.
        BackgroundTask(
            name="imports",
            run=_imports,
            interval=lambda settings: settings.own.import_poll_seconds,
        ),
    ),
)

"""The inventory service as the ``logistics`` CLI sees it (entry point)."""

from __future__ import annotations

from typing import Any

from logistics_shared.service import BackgroundTask, ServiceSpec


def _configure(settings: Any) -> Any:
    from . import configure

    return configure(settings)


def _metadata() -> Any:
    from .models import metadata

    return metadata


def _role_permissions() -> Any:
    from .permissions import role_permissions

    return role_permissions()


def _cli() -> Any:
    from .cli import inventory

    return inventory


def _handlers() -> Any:
    from .handlers import handlers

    return handlers()


def _sweep(registry: Any) -> None:
    from .domain.sweeper import sweep_expired

    sweep_expired(registry["dbsession_factory"], producer="inventory")


SERVICE = ServiceSpec(
    name="inventory",
    port=6541,
    description="Items, warehouses and locations, stock levels, the movement ledger, reservations.",
    migrations="inventory:migrations",
    configure=_configure,
    metadata=_metadata,
    role_permissions=_role_permissions,
    cli=_cli,
    handlers=_handlers,
    background=(
        BackgroundTask(
            name="reservation-sweeper",
            run=_sweep,
            interval=lambda settings: settings.reservation_sweep_seconds,
        ),
    ),
)

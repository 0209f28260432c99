"""The support service as the ``logistics`` CLI sees it (entry point)."""

from __future__ import annotations

from typing import Any

from logistics_shared.service import ServiceSpec


def _configure(settings: Any) -> Any:
    from . import configure

    return configure(settings)


def _metadata() -> Any:
    from .models import metadata

    return metadata


def _role_permissions() -> Any:
    from .permissions import role_permissions

    return role_permissions()


SERVICE = ServiceSpec(
    name="support",
    port=6543,
    description="Tickets, comments, SLAs and a read model of shipments built from events.",
    migrations="support:migrations",
    configure=_configure,
    metadata=_metadata,
    role_permissions=_role_permissions,
)

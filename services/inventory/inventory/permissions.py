"""Inventory's permissions and which roles hold them (admins hold all)."""

from __future__ import annotations

import enum

from logistics_shared.identity import Role


class Permission(enum.StrEnum):
    CATALOG_READ = "inventory:catalog:read"
    CATALOG_WRITE = "inventory:catalog:write"
    STOCK_READ = "inventory:stock:read"
    STOCK_WRITE = "inventory:stock:write"
    RESERVATIONS_READ = "inventory:reservations:read"
    RESERVATIONS_WRITE = "inventory:reservations:write"
    IMPORTS_READ = "inventory:imports:read"
    #: Items imports are admins' alone (checked in the service layer); staff import counts.
    IMPORTS_WRITE = "inventory:imports:write"


_READ = frozenset({Permission.CATALOG_READ, Permission.STOCK_READ, Permission.RESERVATIONS_READ})


def role_permissions() -> dict[Role, frozenset[str]]:
    return {
        # Staff change stock, but only in their warehouses (checked in the service layer).
        Role.WAREHOUSE_STAFF: _READ
        | {
            Permission.STOCK_WRITE,
            Permission.RESERVATIONS_WRITE,
            Permission.IMPORTS_READ,
            Permission.IMPORTS_WRITE,
        },
        Role.SUPPORT_AGENT: _READ,
        # Other services reserve stock and read; they never receive or adjust.
        Role.SERVICE: _READ | {Permission.RESERVATIONS_WRITE},
    }

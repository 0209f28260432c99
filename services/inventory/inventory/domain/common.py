"""Lookups shared by the domain modules, with access rules applied.

A warehouse the caller may not see is reported exactly like one that does
not exist (404 in a path, the same 422 wording in a body), so nothing leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.db import insert_unless_exists
from logistics_shared.errors import InvalidField, NotFound
from logistics_shared.identity import Identity

from ..models import items, locations, stock_levels, warehouses


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Ref:
    id: int
    code: str


def warehouse_for_body(session: Session, actor: Identity, code: str, pointer: str) -> Ref:
    row = session.execute(select(warehouses.c.id, warehouses.c.code).where(warehouses.c.code == code)).first()
    if row is None or not actor.can_access_warehouse(row.code):
        raise InvalidField(pointer, f"Unknown warehouse {code!r}.")
    return Ref(row.id, row.code)


def warehouse_for_path(session: Session, actor: Identity, code: str) -> Ref:
    row = session.execute(select(warehouses.c.id, warehouses.c.code).where(warehouses.c.code == code)).first()
    if row is None or not actor.can_access_warehouse(row.code):
        raise NotFound(f"No warehouse {code!r}.")
    return Ref(row.id, row.code)


def item_for_body(session: Session, sku: str, pointer: str) -> Any:
    row = session.execute(
        select(items.c.id, items.c.sku, items.c.reorder_point).where(items.c.sku == sku)
    ).first()
    if row is None:
        raise InvalidField(pointer, f"Unknown SKU {sku!r}.")
    return row


def location_for_body(session: Session, warehouse: Ref, code: str | None, pointer: str) -> Ref | None:
    if code is None:
        return None
    row = session.execute(
        select(locations.c.id, locations.c.code).where(
            locations.c.warehouse_id == warehouse.id, locations.c.code == code
        )
    ).first()
    if row is None:
        raise InvalidField(pointer, f"Unknown location {code!r} in warehouse {warehouse.code!r}.")
    return Ref(row.id, row.code)


def ensure_stock_level(session: Session, item_id: int, warehouse_id: int) -> None:
    """Create the (item, warehouse) level at zero if it is not there yet."""
    insert_unless_exists(
        session,
        stock_levels,
        {"item_id": item_id, "warehouse_id": warehouse_id, "on_hand": 0, "reserved": 0},
        ["item_id", "warehouse_id"],
    )


def level_body(sku: str, warehouse: str, on_hand: int, reserved: int) -> dict[str, Any]:
    return {
        "sku": sku,
        "warehouse": warehouse,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
    }

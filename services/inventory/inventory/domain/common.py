"""Lookups shared by the domain modules, with access rules applied.

A warehouse the caller may not see is reported exactly like one that does
not exist (404 in a path, the same 422 wording in a body), so nothing leaks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, literal, select
from sqlalchemy.orm import Session

from logistics_shared.db import insert_unless_exists
from logistics_shared.errors import InvalidField, NotFound
from logistics_shared.identity import Identity

from ..models import items, locations, reservation_lines, reservations, stock_levels, warehouses


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


@dataclass(frozen=True)
class Resolved:
    """What one write's body names, found in one statement (:func:`resolve`)."""

    warehouse: Ref
    items: dict[str, Any]  # sku -> (id, sku, reorder_point)
    location: Ref | None
    #: Whether active reservations past their expiry hold any of these items here.
    expired_due: bool


def _one_row() -> Any:
    return select(literal(1).label("one")).subquery("one")


@functools.cache
def _resolve_query(with_location: bool, with_expiry: bool) -> Any:
    """Warehouse, items and location of a body in one statement (one round trip
    instead of one per name); built once, the names go in as bound parameters."""
    one = _one_row()
    found = one.outerjoin(warehouses, warehouses.c.code == bindparam("warehouse")).outerjoin(
        items, items.c.sku.in_(bindparam("skus", expanding=True))
    )
    columns: list[Any] = [
        warehouses.c.id.label("warehouse_id"),
        items.c.id.label("item_id"),
        items.c.sku,
        items.c.reorder_point,
    ]
    if with_location:
        found = found.outerjoin(
            locations,
            and_(locations.c.warehouse_id == warehouses.c.id, locations.c.code == bindparam("location")),
        )
        columns += [locations.c.id.label("location_id")]
    if with_expiry:
        due = (
            select(literal(1))
            .select_from(
                reservations.join(reservation_lines, reservation_lines.c.reservation_id == reservations.c.id)
            )
            .where(
                reservations.c.status == "active",
                reservations.c.expires_at <= bindparam("now"),
                reservations.c.warehouse_id == warehouses.c.id,
                reservation_lines.c.item_id == items.c.id,
            )
            .exists()
        )
        columns += [due.label("expired_due")]
    return select(*columns).select_from(found)


def resolve(
    session: Session,
    actor: Identity,
    warehouse: tuple[str, str],
    skus: list[tuple[str, str]],
    location: tuple[str | None, str] = (None, "/location"),
    expired_before: datetime | None = None,
    check_items: bool = True,
) -> Resolved:
    """``warehouse_for_body``, ``item_for_body`` per SKU and ``location_for_body`` in one
    statement, with the same checks in the same order and the same 422s: each name comes
    as ``(value, pointer)``. ``expired_before``: also whether reservations of these items
    in this warehouse expired by then (the reservation path gives their stock back first).
    ``check_items=False``: an unknown SKU is left out of ``items``, for the caller to
    report after checks of its own that come first."""
    code, pointer = warehouse
    if not actor.can_access_warehouse(code):
        # As warehouse_for_body: a warehouse the caller may not see is an unknown one.
        raise InvalidField(pointer, f"Unknown warehouse {code!r}.")
    location_code, location_pointer = location
    params: dict[str, Any] = {"warehouse": code, "skus": sorted({sku for sku, _ in skus})}
    if location_code is not None:
        params["location"] = location_code
    if expired_before is not None:
        params["now"] = expired_before
    rows = session.execute(
        _resolve_query(location_code is not None, expired_before is not None), params
    ).all()
    if rows[0].warehouse_id is None:
        raise InvalidField(pointer, f"Unknown warehouse {code!r}.")
    found = {row.sku: row for row in rows if row.item_id is not None}
    for sku, sku_pointer in skus:
        if check_items and sku not in found:
            raise InvalidField(sku_pointer, f"Unknown SKU {sku!r}.")
    place = None
    if location_code is not None:
        if rows[0].location_id is None:
            raise InvalidField(location_pointer, f"Unknown location {location_code!r} in warehouse {code!r}.")
        place = Ref(rows[0].location_id, location_code)
    return Resolved(
        Ref(rows[0].warehouse_id, code),
        {sku: Item(row.item_id, row.sku, row.reorder_point) for sku, row in found.items()},
        place,
        any(getattr(row, "expired_due", False) for row in rows),
    )


@dataclass(frozen=True)
class Item:
    id: int
    sku: str
    reorder_point: int


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

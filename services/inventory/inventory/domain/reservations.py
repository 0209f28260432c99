"""Reservations: hold stock for a reference, all lines or none.

Lock order, everywhere: reservation rows first (by id), then stock levels by
item id. Every path follows it, so concurrent reserve/release/consume/expire
calls cannot deadlock each other.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import bindparam

from logistics_shared.db import aware
from logistics_shared.errors import Conflict, InvalidField, NotFound
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox
from logistics_shared.sorting import Sort

from ..models import (
    RESERVATION_SORTS,
    items,
    movements,
    reservation_lines,
    reservations,
    stock_levels,
    warehouses,
)
from .common import item_for_body, resolve, utcnow, warehouse_for_body
from .stock import emit_if_low, record_movement

#: A hold longer than this is a mistake (or belongs in an adjustment).
MAX_HOLD = timedelta(days=366)


def _shortage_detail(shortages: list[dict[str, Any]]) -> str:
    parts = [f"{s['sku']}: requested {s['requested']}, available {s['available']}" for s in shortages]
    return "Not enough stock; nothing was reserved (" + "; ".join(parts) + ")."


def reserve(session: Session, outbox: Outbox, actor: Identity, data: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    code = data["warehouse"]
    if not actor.can_access_warehouse(code):
        raise InvalidField("/warehouse", f"Unknown warehouse {code!r}.")  # as warehouse_for_body
    expires_at = data.get("expires_at")
    # The warehouse is checked before the expiry, as always; where the warehouse is
    # known, the statement that finds it is the one that finds the items.
    on_postgres = session.get_bind().dialect.name == "postgresql"
    found = None
    if on_postgres:
        found = resolve(
            session,
            actor,
            (code, "/warehouse"),
            [(line["sku"], f"/lines/{index}/sku") for index, line in enumerate(data["lines"])],
            expired_before=now,
            check_items=False,
        )
        warehouse = found.warehouse
    else:
        warehouse = warehouse_for_body(session, actor, code, "/warehouse")
    if expires_at is not None and expires_at <= now:
        raise InvalidField("/expires_at", "Must be in the future.")
    if expires_at is not None and expires_at > now + MAX_HOLD:
        raise InvalidField("/expires_at", f"Must be within {MAX_HOLD.days} days.")
    wanted: dict[int, int] = {}
    skus: dict[int, Any] = {}
    for index, line in enumerate(data["lines"]):
        if found is None:
            item = item_for_body(session, line["sku"], f"/lines/{index}/sku")
        elif (item := found.items.get(line["sku"])) is None:
            raise InvalidField(f"/lines/{index}/sku", f"Unknown SKU {line['sku']!r}.")  # as item_for_body
        if item.id in wanted:
            raise InvalidField(f"/lines/{index}/sku", f"SKU {item.sku!r} appears twice; merge the lines.")
        wanted[item.id] = line["quantity"]
        skus[item.id] = item

    if found is not None and not found.expired_due:
        return _reserve_in_one_statement(session, outbox, actor, data, now, warehouse, wanted, skus)

    # Expired reservations on these rows give their stock back first, in the
    # same pass and the same lock order as the new reservation.
    expired = _claim_expired(session, now, warehouse_id=warehouse.id, item_ids=list(wanted))
    released = _sum_lines(session, [r.id for r in expired])

    applied: dict[int, Any] = {}
    shortage = False
    for item_id in sorted(set(wanted) | set(released)):
        give_back = released.get(item_id, 0)
        take = wanted.get(item_id, 0) if not shortage else 0
        row = session.execute(
            update(stock_levels)
            .where(
                stock_levels.c.item_id == item_id,
                stock_levels.c.warehouse_id == warehouse.id,
                stock_levels.c.on_hand - (stock_levels.c.reserved - give_back) >= take,
            )
            .values(reserved=stock_levels.c.reserved - give_back + take)
            .returning(stock_levels.c.on_hand, stock_levels.c.reserved)
        ).first()
        if row is None and take:
            shortage = True
        elif row is not None:
            applied[item_id] = (row, give_back, take)
    if shortage:
        shortages = _shortages(session, warehouse.id, wanted, skus, applied)
        raise Conflict(_shortage_detail(shortages), shortages=shortages)

    for reservation in expired:
        _emit_closed(session, outbox, reservation.id, warehouse.code, reservation.reference, "expired")
    reservation_id = str(uuid.uuid4())
    session.execute(
        reservations.insert().values(
            id=reservation_id,
            warehouse_id=warehouse.id,
            reference=data["reference"],
            status="active",
            expires_at=expires_at,
            created_by=actor.actor,
            created_at=now,
        )
    )
    session.execute(
        reservation_lines.insert(),
        [{"reservation_id": reservation_id, "item_id": i, "quantity": q} for i, q in wanted.items()],
    )
    _emit_reserved(outbox, data, reservation_id, warehouse, wanted, skus, applied)
    return get_reservation(session, actor, reservation_id)


def _emit_reserved(
    outbox: Outbox,
    data: dict[str, Any],
    reservation_id: str,
    warehouse: Any,
    wanted: dict[int, int],
    skus: dict[int, Any],
    applied: dict[int, Any],
) -> None:
    expires_at = data.get("expires_at")
    lines = [{"sku": skus[i].sku, "quantity": q} for i, q in wanted.items()]
    outbox.emit(
        "stock.reserved",
        {
            "reservation_id": reservation_id,
            "warehouse": warehouse.code,
            "reference": data["reference"],
            "lines": lines,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    for item_id, (row, give_back, take) in applied.items():
        if item_id in skus:
            emit_if_low(
                outbox,
                sku=skus[item_id].sku,
                warehouse=warehouse.code,
                reorder_point=skus[item_id].reorder_point,
                on_hand=row.on_hand,
                reserved=row.reserved,
                before_available=row.on_hand - (row.reserved + give_back - take),
            )


def _reserve_in_one_statement(
    session: Session,
    outbox: Outbox,
    actor: Identity,
    data: dict[str, Any],
    now: datetime,
    warehouse: Any,
    wanted: dict[int, int],
    skus: dict[int, Any],
) -> dict[str, Any]:
    """PostgreSQL, no expired reservation to give back: every line's conditional
    ``UPDATE`` and the reservation with its lines in one statement (see
    :func:`_reservation_statement`). A short line leaves the reservation unwritten and
    is a 409, as step by step; the request's rollback undoes the lines that were held."""
    reservation_id = str(uuid.uuid4())
    ordered = sorted(wanted)
    rows = session.execute(
        _reservation_statement(),
        {
            "p_item_ids": ordered,
            "p_quantities": [wanted[i] for i in ordered],
            "p_lines": len(ordered),
            "p_warehouse_id": warehouse.id,
            "p_id": reservation_id,
            "p_status": "active",
            "p_reference": data["reference"],
            "p_expires_at": data.get("expires_at"),
            "p_created_by": actor.actor,
            "p_created_at": now,
        },
    ).all()
    applied = {row.item_id: (row, 0, wanted[row.item_id]) for row in rows}
    if len(applied) < len(wanted):
        shortages = _shortages(session, warehouse.id, wanted, skus, applied)
        raise Conflict(_shortage_detail(shortages), shortages=shortages)
    _emit_reserved(outbox, data, reservation_id, warehouse, wanted, skus, applied)
    first = rows[0]
    return {
        "id": reservation_id,
        "_warehouse_id": warehouse.id,
        "warehouse": warehouse.code,
        "reference": data["reference"],
        "status": "active",
        "expires_at": aware(first.expires_at),
        "created_by": actor.actor,
        "created_at": first.created_at,
        "closed_at": None,
        "lines": [{"sku": skus[i].sku, "quantity": wanted[i]} for i in ordered],
    }


@functools.cache
def _reservation_statement() -> Any:
    """Hold every line (each only if available: ``on_hand - reserved >= quantity``) and,
    only if all were held, write the reservation and its lines; the rows returned are
    the lines held, with their new levels and the stored reservation's timestamps.

    The level rows are locked first, by item id (``locked``), the order every path
    locks them in; the UPDATE then re-checks availability on the locked, latest row,
    so concurrent reservations of the last unit still give one success."""
    wanted = select(
        func.unnest(bindparam("p_item_ids", type_=ARRAY(Integer))).label("item_id"),
        func.unnest(bindparam("p_quantities", type_=ARRAY(Integer))).label("quantity"),
    ).cte("wanted")
    locked = (
        select(stock_levels.c.id)
        .where(
            stock_levels.c.warehouse_id == bindparam("p_warehouse_id"),
            stock_levels.c.item_id.in_(select(wanted.c.item_id)),
        )
        .order_by(stock_levels.c.item_id)
        .with_for_update()
        .cte("locked")
    )
    held = (
        update(stock_levels)
        .where(
            stock_levels.c.id == locked.c.id,
            stock_levels.c.item_id == wanted.c.item_id,
            stock_levels.c.on_hand - stock_levels.c.reserved >= wanted.c.quantity,
        )
        .values(reserved=stock_levels.c.reserved + wanted.c.quantity)
        .returning(stock_levels.c.item_id, stock_levels.c.on_hand, stock_levels.c.reserved)
        .cte("held")
    )
    every_line_held = select(func.count()).select_from(held).scalar_subquery() == bindparam("p_lines")
    reservation = (
        reservations.insert()
        .from_select(
            ["id", "warehouse_id", "reference", "status", "expires_at", "created_by", "created_at"],
            select(
                bindparam("p_id", type_=String),
                bindparam("p_warehouse_id"),
                bindparam("p_reference", type_=String),
                bindparam("p_status", type_=String),
                bindparam("p_expires_at", type_=DateTime(timezone=True)),
                bindparam("p_created_by", type_=String),
                bindparam("p_created_at", type_=DateTime(timezone=True)),
            ).where(every_line_held),
        )
        .returning(reservations.c.id, reservations.c.expires_at, reservations.c.created_at)
        .cte("reservation")
    )
    lines = (
        reservation_lines.insert()
        .from_select(
            ["reservation_id", "item_id", "quantity"],
            # Every wanted line for the reservation (no row when it was not written).
            select(reservation.c.id, wanted.c.item_id, wanted.c.quantity).select_from(
                reservation.join(wanted, true())
            ),
        )
        .returning(reservation_lines.c.item_id)
        .cte("lines")
    )
    return (
        select(
            held.c.item_id,
            held.c.on_hand,
            held.c.reserved,
            reservation.c.expires_at,
            reservation.c.created_at,
            select(func.count()).select_from(lines).scalar_subquery().label("lines_written"),
        )
        .select_from(held.outerjoin(reservation, true()))
        .order_by(held.c.item_id)
    )


def _shortages(
    session: Session, warehouse_id: int, wanted: dict[int, int], skus: dict[int, Any], applied: dict[int, Any]
) -> list[dict[str, Any]]:
    levels = {
        r.item_id: r.on_hand - r.reserved
        for r in session.execute(
            select(stock_levels.c.item_id, stock_levels.c.on_hand, stock_levels.c.reserved).where(
                stock_levels.c.warehouse_id == warehouse_id, stock_levels.c.item_id.in_(list(wanted))
            )
        )
    }
    report = []
    for item_id, quantity in wanted.items():
        # Undo our own (about to be rolled back) partial reservation in the figures.
        _, give_back, take = applied.get(item_id, (None, 0, 0))
        available = levels.get(item_id, 0) + take - give_back
        report.append({"sku": skus[item_id].sku, "requested": quantity, "available": available})
    return [line for line in report if line["available"] < line["requested"]] or report


def _sum_lines(session: Session, reservation_ids: list[str]) -> dict[int, int]:
    totals: dict[int, int] = defaultdict(int)
    if reservation_ids:
        for line in session.execute(
            select(reservation_lines.c.item_id, reservation_lines.c.quantity).where(
                reservation_lines.c.reservation_id.in_(reservation_ids)
            )
        ):
            totals[line.item_id] += line.quantity
    return totals


def _claim_expired(
    session: Session,
    now: datetime,
    *,
    warehouse_id: int | None = None,
    item_ids: list[int] | None = None,
    limit: int = 100,
) -> list[Any]:
    """Mark active reservations past their expiry as expired; return those this call won."""
    candidates = select(reservations.c.id).where(
        reservations.c.status == "active", reservations.c.expires_at <= now
    )
    if warehouse_id is not None:
        candidates = candidates.where(reservations.c.warehouse_id == warehouse_id)
    if item_ids is not None:
        touching = select(reservation_lines.c.reservation_id).where(reservation_lines.c.item_id.in_(item_ids))
        candidates = candidates.where(reservations.c.id.in_(touching))
    ids = sorted(session.execute(candidates.order_by(reservations.c.id).limit(limit)).scalars())
    won = []
    for reservation_id in ids:  # one by one, in id order: the lock order
        row = session.execute(
            update(reservations)
            .where(reservations.c.id == reservation_id, reservations.c.status == "active")
            .values(status="expired", closed_at=now)
            .returning(reservations.c.id, reservations.c.reference, reservations.c.warehouse_id)
        ).first()
        if row is not None:
            won.append(row)
    return won


def expire_due(session: Session, outbox: Outbox, now: datetime | None = None, limit: int = 100) -> int:
    """The sweeper's unit of work: expire up to ``limit`` due reservations."""
    now = now or utcnow()
    won = _claim_expired(session, now, limit=limit)
    if not won:
        return 0
    released = _sum_lines_by_warehouse(session, won)
    for (warehouse_id, item_id), quantity in sorted(released.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        session.execute(
            update(stock_levels)
            .where(stock_levels.c.item_id == item_id, stock_levels.c.warehouse_id == warehouse_id)
            .values(reserved=stock_levels.c.reserved - quantity)
        )
    codes = {row.id: row.code for row in session.execute(select(warehouses.c.id, warehouses.c.code))}
    for row in won:
        _emit_closed(session, outbox, row.id, codes[row.warehouse_id], row.reference, "expired")
    return len(won)


def _sum_lines_by_warehouse(session: Session, won: list[Any]) -> dict[tuple[int, int], int]:
    warehouse_of = {r.id: r.warehouse_id for r in won}
    totals: dict[tuple[int, int], int] = defaultdict(int)
    for line in session.execute(
        select(
            reservation_lines.c.reservation_id, reservation_lines.c.item_id, reservation_lines.c.quantity
        ).where(reservation_lines.c.reservation_id.in_(list(warehouse_of)))
    ):
        totals[(warehouse_of[line.reservation_id], line.item_id)] += line.quantity
    return totals


def _lines(session: Session, reservation_id: str) -> list[Any]:
    return list(
        session.execute(
            select(reservation_lines.c.item_id, items.c.sku, reservation_lines.c.quantity)
            .join(items, items.c.id == reservation_lines.c.item_id)
            .where(reservation_lines.c.reservation_id == reservation_id)
            .order_by(reservation_lines.c.item_id)
        ).all()
    )


def _emit_closed(
    session: Session, outbox: Outbox, reservation_id: str, warehouse: str, reference: str, reason: str
) -> None:
    outbox.emit(
        "stock.released",
        {
            "reservation_id": reservation_id,
            "warehouse": warehouse,
            "reference": reference,
            "lines": [{"sku": l.sku, "quantity": l.quantity} for l in _lines(session, reservation_id)],
            "reason": reason,
        },
    )


def _close(session: Session, actor: Identity, reservation_id: str, new_status: str) -> Any:
    """Move an active, unexpired reservation to ``new_status`` atomically, or explain why not."""
    current = _load(session, actor, reservation_id)
    now = utcnow()
    row = session.execute(
        update(reservations)
        .where(
            reservations.c.id == reservation_id,
            reservations.c.status == "active",
            or_(reservations.c.expires_at.is_(None), reservations.c.expires_at > now),
        )
        .values(status=new_status, closed_at=now)
        .returning(reservations.c.id)
    ).first()
    if row is None:
        status = session.execute(
            select(reservations.c.status).where(reservations.c.id == reservation_id)
        ).scalar_one()
        if status == "active":
            status = "expired"
        raise Conflict(
            f"The reservation is {status}; only an active reservation can be {new_status}.",
            reservation_status=status,
        )
    return current


def release(session: Session, outbox: Outbox, actor: Identity, reservation_id: str) -> dict[str, Any]:
    current = _close(session, actor, reservation_id, "released")
    for line in _lines(session, reservation_id):
        session.execute(
            update(stock_levels)
            .where(
                stock_levels.c.item_id == line.item_id,
                stock_levels.c.warehouse_id == current["_warehouse_id"],
            )
            .values(reserved=stock_levels.c.reserved - line.quantity)
        )
    _emit_closed(session, outbox, reservation_id, current["warehouse"], current["reference"], "released")
    return get_reservation(session, actor, reservation_id)


def consume(session: Session, outbox: Outbox, actor: Identity, reservation_id: str) -> dict[str, Any]:
    """Issue the reserved stock: the hold and the units on hand both go down, with a ledger row each."""
    current = _close(session, actor, reservation_id, "consumed")
    movement_ids = []
    lines = _lines(session, reservation_id)
    for line in lines:
        session.execute(
            update(stock_levels)
            .where(
                stock_levels.c.item_id == line.item_id,
                stock_levels.c.warehouse_id == current["_warehouse_id"],
            )
            .values(
                reserved=stock_levels.c.reserved - line.quantity,
                on_hand=stock_levels.c.on_hand - line.quantity,
            )
        )
        movement_ids.append(
            record_movement(
                session,
                actor,
                item_id=line.item_id,
                warehouse_id=current["_warehouse_id"],
                kind="issue",
                quantity=-line.quantity,
                reference=current["reference"],
                reservation_id=reservation_id,
            )
        )
    outbox.emit(
        "stock.issued",
        {
            "reservation_id": reservation_id,
            "warehouse": current["warehouse"],
            "reference": current["reference"],
            "lines": [{"sku": l.sku, "quantity": l.quantity} for l in lines],
            "movement_ids": movement_ids,
        },
    )
    return get_reservation(session, actor, reservation_id)


_COLUMNS = (
    reservations.c.id,
    reservations.c.warehouse_id.label("_warehouse_id"),
    warehouses.c.code.label("warehouse"),
    reservations.c.reference,
    reservations.c.status,
    reservations.c.expires_at,
    reservations.c.created_by,
    reservations.c.created_at,
    reservations.c.closed_at,
)


def _load(session: Session, actor: Identity, reservation_id: str) -> dict[str, Any]:
    try:
        uuid.UUID(reservation_id)
    except ValueError:
        raise NotFound(f"No reservation {reservation_id!r}.") from None
    row = session.execute(
        select(*_COLUMNS)
        .join(warehouses, warehouses.c.id == reservations.c.warehouse_id)
        .where(reservations.c.id == reservation_id)
    ).first()
    if row is None or not actor.can_access_warehouse(row.warehouse):
        raise NotFound(f"No reservation {reservation_id!r}.")
    data = dict(row._mapping)
    data["expires_at"] = aware(data["expires_at"])
    return data


def get_reservation(session: Session, actor: Identity, reservation_id: str) -> dict[str, Any]:
    data = _load(session, actor, reservation_id)
    data["lines"] = [{"sku": l.sku, "quantity": l.quantity} for l in _lines(session, reservation_id)]
    return data


def list_reservations(
    session: Session,
    actor: Identity,
    *,
    warehouse: str | None,
    reference: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
    sort: Sort | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    sort = RESERVATION_SORTS.of(sort)
    created, ident = reservations.c.created_at, reservations.c.id
    stmt = (
        select(*_COLUMNS)
        .join(warehouses, warehouses.c.id == reservations.c.warehouse_id)
        .order_by(*sort.order_by(created, ident))
        .limit(limit + 1)
    )
    if warehouse:
        stmt = stmt.where(warehouses.c.code == warehouse)
    if reference:
        stmt = stmt.where(reservations.c.reference == reference)
    if status:
        stmt = stmt.where(reservations.c.status == status)
    if not actor.all_warehouses:
        stmt = stmt.where(warehouses.c.code.in_(sorted(actor.warehouses)))
    if cursor:
        stmt = stmt.where(sort.after(created, ident, sort.decode(cursor)))
    rows, next_cursor = sort.page(
        [dict(r._mapping) for r in session.execute(stmt)], limit, lambda r: (r["created_at"], r["id"])
    )
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        for line in session.execute(
            select(reservation_lines.c.reservation_id, items.c.sku, reservation_lines.c.quantity)
            .join(items, items.c.id == reservation_lines.c.item_id)
            .where(reservation_lines.c.reservation_id.in_([r["id"] for r in rows]))
            .order_by(reservation_lines.c.item_id)
        ):
            lines[line.reservation_id].append({"sku": line.sku, "quantity": line.quantity})
    for row in rows:
        row["lines"] = lines[row["id"]]
        row["expires_at"] = aware(row["expires_at"])
    return rows, next_cursor


def restock_consumed(session: Session, outbox: Outbox, actor: Identity, reservation_id: str) -> bool:
    """Put a consumed reservation's stock back on hand (a shipment cancelled after
    its label: the goods never left). Receipts referenced ``restock:<id>``; done
    at most once per reservation. Returns whether anything was restocked.
    """
    from .stock import receive

    reference = f"restock:{reservation_id}"
    if session.execute(select(movements.c.id).where(movements.c.reference == reference).limit(1)).first():
        return False
    held = get_reservation(session, actor, reservation_id)
    if held["status"] != "consumed":
        return False
    for line in held["lines"]:
        receive(
            session,
            outbox,
            actor,
            {
                "warehouse": held["warehouse"],
                "sku": line["sku"],
                "quantity": line["quantity"],
                "location": None,
                "reference": reference,
            },
        )
    return True

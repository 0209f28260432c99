"""Shipping's read model of inventory's catalogue, and what a new shipment learns from it.

Built only from inventory's ``item.*`` and ``warehouse.*`` events (never a call to
inventory). Each row keeps the version of the event that wrote it and an event
applies only when it is newer: a late or repeated ``*.updated`` changes nothing
(the inbox already drops exact duplicates).

**When a reference is "unknown"** (``check_shipment``): the read model lags behind
inventory by however long its events take, so a SKU missing from it may be an item
created a second ago. A shipment is rejected for an unknown SKU or warehouse only
while the read model is *synced*: the consumer that builds it found its queue empty
within the last ``LOGISTICS_CATALOGUE_FRESH_SECONDS`` and has not had a delivery
since (its drain mark, ``logistics_shared.bus.drain``), and the read model knows at
least one warehouse (an empty one has never been synced). Otherwise the shipment is
accepted as before and the saga decides (inventory answers ``invalid_request`` and
the shipment goes ``on_hold``). The check costs the request one ``SELECT`` (the mark
and the request's SKUs together), never a broker call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, func, null, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from logistics_shared.db import aware
from logistics_shared.errors import ValidationFailed
from logistics_shared.readpath import prebuilt
from logistics_shared.schemas import MAX_MILLIMETRES

from ..models import catalogue_items, catalogue_warehouses, drain_marks

#: The handler (and queue) that builds the read model: its drain mark is the one checked.
HANDLER = "catalogue"

#: What one parcel may weigh and measure (the limits of ``ParcelInSchema``).
MAX_PARCEL_GRAMS = 70_000


# -- applying inventory's events ---------------------------------------------------------------
def _upsert(session: Session, table: Any, key: str, values: dict[str, Any]) -> None:
    """Insert, or update when the event is newer than the row (one statement, race-free)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key],
        set_={name: stmt.excluded[name] for name in values if name != key},
        where=table.c.version < stmt.excluded.version,
    )
    session.execute(stmt)


def apply_item(session: Session, data: dict[str, Any]) -> None:
    """``item.created`` / ``item.updated``: the item as of the event's version."""
    values = {
        key: data[key]
        for key in ("sku", "name", "unit_weight_g", "length_mm", "width_mm", "height_mm", "version")
    }
    _upsert(session, catalogue_items, "sku", {**values, "updated_at": datetime.now(UTC)})


def apply_warehouse(session: Session, data: dict[str, Any]) -> None:
    """``warehouse.created`` / ``warehouse.updated``: name, address and the sender's phone."""
    address = data["address"]
    _upsert(
        session,
        catalogue_warehouses,
        "code",
        {
            "code": data["code"],
            "name": data["name"],
            "address": orjson.dumps(address).decode(),
            "phone": address.get("phone"),
            "version": data["version"],
            "updated_at": datetime.now(UTC),
        },
    )


# -- reading it ----------------------------------------------------------------------------
_WAREHOUSE = prebuilt(select(catalogue_warehouses).where(catalogue_warehouses.c.code == bindparam("code")))


def warehouse(session: Session, code: str) -> dict[str, Any] | None:
    """The warehouse as the read model knows it (``None`` if it does not)."""
    row = session.execute(_WAREHOUSE, {"code": code}).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["address"] = orjson.loads(found["address"])
    return found


# One statement, so the check costs a create one round trip (the write ceilings of
# tests/shared/test_write_round_trips.py): a first row with the drain mark of the
# catalogue's consumer, whether the warehouse is known and whether any is (a read model
# without a single warehouse has never been synced), then a row per known SKU of the
# request. The branches are told apart by ``sku`` (NULL only in the first).
_SYNC_ROW = select(
    null().label("sku"),
    null().label("unit_weight_g"),
    null().label("length_mm"),
    null().label("width_mm"),
    null().label("height_mm"),
    select(drain_marks.c.drained_at)
    .where(drain_marks.c.handler == HANDLER)
    .scalar_subquery()
    .label("drained_at"),
    select(func.count()).select_from(catalogue_warehouses).scalar_subquery().label("warehouses"),
    select(func.count())
    .select_from(catalogue_warehouses)
    .where(catalogue_warehouses.c.code == bindparam("warehouse"))
    .scalar_subquery()
    .label("warehouse_known"),
)
_ITEM_ROWS = select(
    catalogue_items.c.sku,
    catalogue_items.c.unit_weight_g,
    catalogue_items.c.length_mm,
    catalogue_items.c.width_mm,
    catalogue_items.c.height_mm,
    null(),
    null(),
    null(),
).where(catalogue_items.c.sku.in_(bindparam("skus", expanding=True)))
_LOOKUP = union_all(_SYNC_ROW, _ITEM_ROWS)  # built once; the ORM session caches its compilation


@dataclass(frozen=True)
class Knowledge:
    """What the read model says about one shipment request."""

    synced: bool
    warehouse_known: bool
    items: dict[str, dict[str, Any]]


def synced(drained_at: datetime | None, fresh_seconds: float, now: datetime | None = None) -> bool:
    """The lag rule: a drain mark exists, is set, and is at most ``fresh_seconds`` old."""
    if drained_at is None or fresh_seconds <= 0:
        return False
    age = (now or datetime.now(UTC)) - aware(drained_at)
    return age <= timedelta(seconds=fresh_seconds)


def lookup(session: Session, data: dict[str, Any], fresh_seconds: float) -> Knowledge:
    skus = sorted({line["sku"] for line in data["lines"]})
    rows = session.execute(_LOOKUP, {"warehouse": data["warehouse"], "skus": skus}).all()
    (mark,) = (row for row in rows if row.sku is None)
    # Drained but empty is "never synced": its events went out before its queue existed (a
    # read model added to a running suite, until a replay fills it). No shipment could pass.
    is_synced = bool(mark.warehouses) and synced(mark.drained_at, fresh_seconds)
    items = {
        row.sku: {name: getattr(row, name) for name in _ITEM_FIELDS} for row in rows if row.sku is not None
    }
    return Knowledge(synced=is_synced, warehouse_known=bool(mark.warehouse_known), items=items)


_ITEM_FIELDS = ("sku", "unit_weight_g", "length_mm", "width_mm", "height_mm")


def default_parcel(lines: list[dict[str, Any]], items: dict[str, dict[str, Any]]) -> dict[str, int] | None:
    """One parcel for the lines when the request gives none: the units stacked in one box.

    Weight: the sum of unit weight * quantity. Length and width: the largest of the items'.
    Height: the sum of height * quantity. ``None`` when an item is not known, or when the
    result exceeds what one parcel may be (70 kg, 100 m a side): then parcels stay empty
    as before and must be given before a label is bought.
    """
    if any(line["sku"] not in items for line in lines):
        return None
    units = [(items[line["sku"]], line["quantity"]) for line in lines]
    parcel = {
        "weight_g": sum(item["unit_weight_g"] * quantity for item, quantity in units),
        "length_mm": max(item["length_mm"] for item, _ in units),
        "width_mm": max(item["width_mm"] for item, _ in units),
        "height_mm": sum(item["height_mm"] * quantity for item, quantity in units),
    }
    if not 1 <= parcel["weight_g"] <= MAX_PARCEL_GRAMS:
        return None
    if not all(1 <= parcel[side] <= MAX_MILLIMETRES for side in ("length_mm", "width_mm", "height_mm")):
        return None
    return parcel


def check_shipment(session: Session, data: dict[str, Any], fresh_seconds: float) -> dict[str, Any]:
    """A new shipment's body checked against the read model: a 422 on every unknown SKU
    (``/lines/N/sku``) and on an unknown warehouse (``/warehouse``), worded as the API's
    other unknown references — only while the read model is synced (the lag rule above).
    Returns the body, with one derived parcel when it gave none and every item is known.
    """
    known = lookup(session, data, fresh_seconds)
    if known.synced:
        errors = []
        if not known.warehouse_known:
            errors.append({"pointer": "/warehouse", "detail": f"Unknown warehouse {data['warehouse']!r}."})
        errors.extend(
            {"pointer": f"/lines/{index}/sku", "detail": f"Unknown SKU {line['sku']!r}."}
            for index, line in enumerate(data["lines"])
            if line["sku"] not in known.items
        )
        if errors:
            raise ValidationFailed(errors)
    if not data.get("parcels"):
        parcel = default_parcel(data["lines"], known.items)
        if parcel is not None:
            return {**data, "parcels": [parcel]}
    return data

"""Items, warehouses and their locations (admins create; everyone reads)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from logistics_shared.db import insert_unless_exists
from logistics_shared.errors import Conflict, NotFound, PreconditionFailed
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox
from logistics_shared.readpath import prebuilt
from logistics_shared.snapshot import Page, SnapshotSource
from logistics_shared.sorting import Sort

from ..models import ITEM_SORTS, LOCATION_SORTS, WAREHOUSE_SORTS, items, locations, warehouses
from ..models import outbox as outbox_table
from .common import utcnow, warehouse_for_path

ITEM_FIELDS = ("name", "unit_weight_g", "length_mm", "width_mm", "height_mm", "reorder_point")
#: What ``item.created`` / ``item.updated`` carry: what another service needs to know of an
#: item (shipping: to check SKUs and default parcels), not its reorder point.
ITEM_EVENT_FIELDS = ("sku", "name", "unit_weight_g", "length_mm", "width_mm", "height_mm", "version")
WAREHOUSE_FIELDS = ("name", "address")


def _item(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _sink(session: Session, outbox: Outbox | None) -> Outbox:
    """The caller's outbox (a request's, with its correlation id), or one of the session's own:
    a catalogue change never commits without its event."""
    return outbox if outbox is not None else Outbox(session, outbox_table, producer="inventory")


def item_event(item: dict[str, Any]) -> dict[str, Any]:
    """The data of ``item.created`` / ``item.updated`` for the item as it is now."""
    return {key: item[key] for key in ITEM_EVENT_FIELDS}


def create_item(session: Session, data: dict[str, Any], outbox: Outbox | None = None) -> dict[str, Any]:
    now = utcnow()
    values = {k: data[k] for k in ITEM_FIELDS}
    values.update(sku=data["sku"], created_at=now, updated_at=now, version=1)
    row = insert_unless_exists(session, items, values, ["sku"], returning=items.c)
    if row is None:
        raise Conflict(f"An item with SKU {data['sku']!r} already exists.")
    item = _item(row)
    _sink(session, outbox).emit("item.created", item_event(item))
    return item


#: Built once: building a select costs a hot read more than executing it (see stock.py).
_ITEM_BY_SKU = prebuilt(select(items).where(items.c.sku == bindparam("sku")))


def get_item(session: Session, sku: str) -> dict[str, Any]:
    row = session.execute(_ITEM_BY_SKU, {"sku": sku}).first()
    if row is None:
        raise NotFound(f"No item with SKU {sku!r}.")
    return _item(row)


def update_item(
    session: Session,
    sku: str,
    changes: dict[str, Any],
    expected_version: int | None,
    outbox: Outbox | None = None,
) -> dict[str, Any]:
    """Apply ``changes``; with ``expected_version`` the check and the write are one statement."""
    stmt = update(items).where(items.c.sku == sku)
    if expected_version is not None:
        stmt = stmt.where(items.c.version == expected_version)
    row = session.execute(
        stmt.values(version=items.c.version + 1, updated_at=utcnow(), **changes).returning(*items.c)
    ).first()
    if row is None:
        current = get_item(session, sku)  # 404 if it does not exist
        # It exists, so the version condition is what failed: expected_version was given.
        assert expected_version is not None
        raise PreconditionFailed.stale("item", current["version"], expected_version)
    item = _item(row)
    _sink(session, outbox).emit("item.updated", item_event(item))
    return item


def upsert_item(session: Session, data: dict[str, Any], outbox: Outbox | None = None) -> str:
    """Create or update by SKU (bulk import); returns ``created``, ``updated`` or ``unchanged``."""
    existing = session.execute(select(items).where(items.c.sku == data["sku"])).first()
    if existing is None:
        create_item(session, data, outbox)
        return "created"
    changes = {k: data[k] for k in ITEM_FIELDS if k in data and data[k] != getattr(existing, k)}
    if not changes:
        return "unchanged"
    update_item(session, data["sku"], changes, None, outbox)
    return "updated"


#: The column of each ?sort= key of the item list.
_ITEM_KEYS = {"sku": items.c.sku, "name": items.c.name, "created_at": items.c.created_at}


def list_items(
    session: Session,
    cursor: str | None,
    limit: int,
    q: str | None = None,
    *,
    search: str | None = None,
    sort: Sort | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Items in ``sort`` order; ``q`` is a SKU prefix (exact case), ``search`` a name
    substring or SKU prefix in any case (served by the trigram indexes on PostgreSQL)."""
    sort = ITEM_SORTS.of(sort)
    column = _ITEM_KEYS[sort.name]
    stmt = select(items).order_by(*sort.order_by(column, items.c.id)).limit(limit + 1)
    if cursor:
        stmt = stmt.where(sort.after(column, items.c.id, sort.decode(cursor)))
    if q:
        stmt = stmt.where(items.c.sku.startswith(q, autoescape=True))
    if search:
        stmt = stmt.where(
            or_(
                items.c.name.icontains(search, autoescape=True),
                items.c.sku.istartswith(search, autoescape=True),
            )
        )
    rows = [_item(r) for r in session.execute(stmt)]
    return sort.page(rows, limit, lambda r: (r[sort.name], r["id"]))


def _warehouse(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["address"] = orjson.loads(data["address"])
    data.pop("id", None)
    return data


def warehouse_event(warehouse: dict[str, Any]) -> dict[str, Any]:
    """The data of ``warehouse.created`` / ``warehouse.updated``: the name and the postal
    address (whose optional ``phone`` labels print as the sender's)."""
    return {key: warehouse[key] for key in ("code", "name", "address", "version")}


def create_warehouse(session: Session, data: dict[str, Any], outbox: Outbox | None = None) -> dict[str, Any]:
    now = utcnow()
    values = {
        "code": data["code"],
        "name": data["name"],
        "address": orjson.dumps(data["address"]).decode(),
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    row = insert_unless_exists(session, warehouses, values, ["code"], returning=warehouses.c)
    if row is None:
        raise Conflict(f"A warehouse with code {data['code']!r} already exists.")
    warehouse = _warehouse(row)
    _sink(session, outbox).emit("warehouse.created", warehouse_event(warehouse))
    return warehouse


def update_warehouse(
    session: Session,
    actor: Identity,
    code: str,
    changes: dict[str, Any],
    expected_version: int | None,
    outbox: Outbox | None = None,
) -> dict[str, Any]:
    """Change a warehouse's name or address (the whole address: it is one postal fact);
    with ``expected_version`` the check and the write are one statement."""
    ref = warehouse_for_path(session, actor, code)  # 404 for another warehouse's staff too
    values = {k: v for k, v in changes.items() if k in WAREHOUSE_FIELDS}
    if "address" in values:
        values["address"] = orjson.dumps(values["address"]).decode()
    stmt = update(warehouses).where(warehouses.c.id == ref.id)
    if expected_version is not None:
        stmt = stmt.where(warehouses.c.version == expected_version)
    row = session.execute(
        stmt.values(version=warehouses.c.version + 1, updated_at=utcnow(), **values).returning(*warehouses.c)
    ).first()
    if row is None:
        current = get_warehouse(session, actor, code)
        assert expected_version is not None
        raise PreconditionFailed.stale("warehouse", current["version"], expected_version)
    warehouse = _warehouse(row)
    _sink(session, outbox).emit("warehouse.updated", warehouse_event(warehouse))
    return warehouse


def get_warehouse(session: Session, actor: Identity, code: str) -> dict[str, Any]:
    ref = warehouse_for_path(session, actor, code)
    return _warehouse(session.execute(select(warehouses).where(warehouses.c.id == ref.id)).one())


def list_warehouses(
    session: Session, actor: Identity, cursor: str | None, limit: int, *, sort: Sort | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    sort = WAREHOUSE_SORTS.of(sort)
    code = warehouses.c.code
    stmt = select(warehouses).order_by(*sort.order_by(code, warehouses.c.id)).limit(limit + 1)
    if not actor.all_warehouses:
        stmt = stmt.where(code.in_(sorted(actor.warehouses)))
    if cursor:
        stmt = stmt.where(sort.after(code, warehouses.c.id, sort.decode(cursor)))
    rows = [_warehouse(r) for r in session.execute(stmt)]
    return sort.page(rows, limit, lambda r: (r["code"], None))


def create_location(
    session: Session, actor: Identity, warehouse: str, data: dict[str, Any]
) -> dict[str, Any]:
    ref = warehouse_for_path(session, actor, warehouse)
    values = {
        "warehouse_id": ref.id,
        "code": data["code"],
        "description": data.get("description"),
        "created_at": utcnow(),
    }
    row = insert_unless_exists(
        session,
        locations,
        values,
        ["warehouse_id", "code"],
        returning=(locations.c.code, locations.c.description, locations.c.created_at),
    )
    if row is None:
        raise Conflict(f"Warehouse {ref.code!r} already has a location {data['code']!r}.")
    return {"warehouse": ref.code, **row._mapping}


def list_locations(
    session: Session,
    actor: Identity,
    warehouse: str,
    cursor: str | None,
    limit: int,
    *,
    sort: Sort | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    sort = LOCATION_SORTS.of(sort)
    ref = warehouse_for_path(session, actor, warehouse)
    code = locations.c.code
    stmt = (
        select(code, locations.c.description, locations.c.created_at)
        .where(locations.c.warehouse_id == ref.id)
        .order_by(*sort.order_by(code, locations.c.id))
        .limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(sort.after(code, locations.c.id, sort.decode(cursor)))
    rows = [{"warehouse": ref.code, **r._mapping} for r in session.execute(stmt)]
    return sort.page(rows, limit, lambda r: (r["code"], None))


# -- snapshots (``logistics replay inventory --snapshot``) ----------------------------------
# Built with item_event / warehouse_event, as the live item.updated / warehouse.updated are:
# a snapshot event cannot carry other fields than the ones consumers already apply.
def _item_page(session: Session, after: int | None, limit: int) -> Page:
    stmt = select(items).order_by(items.c.id).limit(limit)
    if after is not None:
        stmt = stmt.where(items.c.id > after)
    return [(row.id, item_event(_item(row))) for row in session.execute(stmt)]


def _warehouse_page(session: Session, after: int | None, limit: int) -> Page:
    stmt = select(warehouses).order_by(warehouses.c.id).limit(limit)
    if after is not None:
        stmt = stmt.where(warehouses.c.id > after)
    return [(row.id, warehouse_event(_warehouse(row))) for row in session.execute(stmt)]


def _counter(table: Any) -> Any:
    return lambda session: session.execute(select(func.count()).select_from(table)).scalar_one()


def snapshots() -> tuple[SnapshotSource, ...]:
    """Inventory's catalogue as it is now: one ``*.updated`` per warehouse and per item
    (warehouses first, so a consumer knows a warehouse before the items a shipment names)."""
    return (
        SnapshotSource("warehouse.updated", _warehouse_page, _counter(warehouses)),
        SnapshotSource("item.updated", _item_page, _counter(items)),
    )

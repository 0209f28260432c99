"""Listing the shipment read model: filters, a sort, and a keyset cursor that stays stable
under it (``GET /v1/shipments``).

Each sort orders by one key, then by ``shipment_id`` so that ties have an order too, and
each is served by an index of migration 0012 (``updated_at`` alone and after the
``status`` or ``warehouse`` filter; ``coalesce(reference, '')``). The cursor carries the
sort it was made for, the last row's sort value and its id (the shared keyset cursor of
:mod:`logistics_shared.sorting`): the next page continues strictly after them,
``(key, id) > (:value, :id)``, a range of that index.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.identity import Identity
from logistics_shared.sorting import Sort

from ..models import REFERENCE_KEY, SHIPMENT_VIEW_SORTS, shipment_view, tickets

#: The allowed ``sort`` values.
SORTS = SHIPMENT_VIEW_SORTS.choices

#: Equality filters, each a column of the same name (``reference``: its never-NULL key).
EQUALITY_FILTERS = ("tracking_number", "status", "warehouse")

#: Each sort's key: never NULL, so a row is never skipped by a cursor.
_KEYS: dict[str, Any] = {"updated_at": shipment_view.c.updated_at, "reference": REFERENCE_KEY}


def list_(
    session: Session, actor: Identity, *, filters: dict[str, Any], sort: Sort, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the read model's shipments, each with its linked tickets."""
    rows = [dict(r._mapping) for r in session.execute(statement(actor, filters, sort, cursor, limit + 1))]
    # A NULL reference sorts (and continues) as "": the key is coalesce(reference, '').
    page, next_cursor = sort.page(rows, limit, lambda r: (r[sort.name] or "", r["shipment_id"]))
    _with_tickets(session, page)
    return page, next_cursor


def statement(
    actor: Identity, filters: dict[str, Any], sort: Sort | str, cursor: str | None, limit: int
) -> Any:
    """The SELECT of up to ``limit`` rows (tests EXPLAIN it)."""
    if isinstance(sort, str):
        sort = SHIPMENT_VIEW_SORTS.parse(sort)
    key, ident = _KEYS[sort.name], shipment_view.c.shipment_id
    stmt = select(shipment_view).where(
        *(
            shipment_view.c[name] == filters[name]
            for name in EQUALITY_FILTERS
            if filters.get(name) is not None
        )
    )
    if filters.get("reference") is not None:
        stmt = stmt.where(_KEYS["reference"] == filters["reference"])  # never "": at least one character
    if filters.get("since") is not None:
        stmt = stmt.where(shipment_view.c.updated_at >= filters["since"])
    if filters.get("until") is not None:
        stmt = stmt.where(shipment_view.c.updated_at < filters["until"])
    if not actor.all_warehouses:
        stmt = stmt.where(shipment_view.c.warehouse.in_(sorted(actor.warehouses)))
    if cursor:
        stmt = stmt.where(sort.after(key, ident, sort.decode(cursor)))
    return stmt.order_by(*sort.order_by(key, ident)).limit(limit)


def _with_tickets(session: Session, page: list[dict[str, Any]]) -> None:
    """The tickets linked to the page's shipments, in one query (not one per shipment)."""
    ids = [row["shipment_id"] for row in page]
    linked: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        found = session.execute(
            select(tickets.c.shipment_id, tickets.c.id, tickets.c.number, tickets.c.status)
            .where(tickets.c.shipment_id.in_(ids))
            .order_by(tickets.c.number)
        )
        for ticket in found:
            linked[ticket.shipment_id].append(
                {"id": ticket.id, "number": ticket.number, "status": ticket.status}
            )
    for shipment in page:
        shipment["tracking"] = orjson.loads(shipment["tracking"])
        shipment["tickets"] = linked[shipment["shipment_id"]]

"""Shipments and the shipping side of the fulfilment saga."""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from logistics_shared.db import execute_at_commit
from logistics_shared.errors import InvalidField, NotFound, PreconditionFailed
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox
from logistics_shared.readpath import prebuilt
from logistics_shared.sorting import Sort

from ..models import SHIPMENT_SORTS, labels, parcels, shipment_history, shipment_lines, shipments
from ..models.shipment import SEARCHED
from . import references, tracking
from .lifecycle import transition


def _requested(
    outbox: Outbox, shipment: dict[str, Any], lines: list[dict[str, Any]], hold_for: timedelta | None
) -> None:
    outbox.emit(
        "shipment.requested",
        {
            "shipment_id": shipment["id"],
            "reference": shipment["reference"],
            "warehouse": shipment["warehouse"],
            "lines": [{"sku": line["sku"], "quantity": line["quantity"]} for line in lines],
            # Stock is not held forever for a shipment nobody labels.
            "hold_until": (datetime.now(UTC) + hold_for).isoformat() if hold_for else None,
            "version": shipment["version"],
        },
    )


def create(
    session: Session, outbox: Outbox, actor: Identity, data: dict[str, Any], hold_for: timedelta | None = None
) -> dict[str, Any]:
    """Record the shipment ``awaiting_stock`` and ask inventory to reserve (the saga's first step).

    A reference a live shipment of the warehouse already has is a 409 unless
    ``allow_duplicate_reference`` (:mod:`.references`)."""
    if not actor.can_access_warehouse(data["warehouse"]):
        raise InvalidField("/warehouse", f"Unknown warehouse {data['warehouse']!r}.")
    skus = [line["sku"] for line in data["lines"]]
    for index, sku in enumerate(skus):
        if sku in skus[:index]:
            raise InvalidField(f"/lines/{index}/sku", f"SKU {sku!r} appears twice; merge the lines.")
    if not data.get("allow_duplicate_reference"):
        references.refuse_duplicate(session, data["warehouse"], data["reference"])
    now = datetime.now(UTC)
    shipment = {
        "id": str(uuid.uuid4()),
        "reference": data["reference"],
        "warehouse": data["warehouse"],
        "ship_to": data["ship_to"],
        "status": "awaiting_stock",
        "hold_reason": None,
        "reservation_id": None,
        "version": 1,
        "created_by": actor.actor,
        "created_at": now,
        "updated_at": now,
    }
    # Nothing below reads what these write, and no body can make them fail (the
    # schema and the checks above hold every constraint): they go with the COMMIT,
    # in its round trip on PostgreSQL, and the response is built from what they wrote.
    execute_at_commit(
        session,
        shipments.insert()
        .inline()
        .values(
            **{
                **shipment,
                "ship_to": orjson.dumps(data["ship_to"]).decode(),
                "recipient_name": data["ship_to"]["name"],
                "postal_code": data["ship_to"].get("postal_code"),
            }
        ),
    )
    execute_at_commit(
        session,
        shipment_lines.insert().inline(),
        [
            {"shipment_id": shipment["id"], "sku": line["sku"], "quantity": line["quantity"]}
            for line in data["lines"]
        ],
    )
    if data.get("parcels"):
        execute_at_commit(
            session,
            parcels.insert().inline(),
            [
                {"shipment_id": shipment["id"], "seq": i, **parcel}
                for i, parcel in enumerate(data["parcels"], 1)
            ],
        )
    history = {
        "from_status": None,
        "to_status": "awaiting_stock",
        "cause": actor.actor,
        "detail": None,
        "at": now,
    }
    execute_at_commit(
        session, shipment_history.insert().inline().values(shipment_id=shipment["id"], **history)
    )
    _requested(outbox, shipment, data["lines"], hold_for)
    # As get() would read it back: ship_to as stored (JSON), lines by SKU, parcels in order.
    return {
        **shipment,
        "ship_to": orjson.loads(orjson.dumps(data["ship_to"])),
        "lines": sorted(({"sku": l["sku"], "quantity": l["quantity"]} for l in data["lines"]), key=_by_sku),
        "parcels": [
            {key: parcel[key] for key in ("weight_g", "length_mm", "width_mm", "height_mm")}
            for parcel in data.get("parcels") or ()
        ],
        "history": [history],
        "tracking": [],
        "label": None,
    }


def _by_sku(line: dict[str, Any]) -> str:
    return str(line["sku"])


#: A shipment's columns as the code reads them: not the copies of ship_to kept for ?q=.
_LISTED = tuple(c for c in shipments.c if c.name not in ("recipient_name", "postal_code"))
_BY_ID = prebuilt(select(*_LISTED).where(shipments.c.id == bindparam("id")))
_BY_ID_FOR_UPDATE = _BY_ID.with_for_update()


def _load(
    session: Session, shipment_id: str, actor: Identity | None = None, lock: bool = False
) -> dict[str, Any]:
    try:
        uuid.UUID(shipment_id)
    except ValueError:
        raise NotFound(f"No shipment {shipment_id!r}.") from None
    row = session.execute(_BY_ID_FOR_UPDATE if lock else _BY_ID, {"id": shipment_id}).first()
    if row is None or (actor is not None and not actor.can_access_warehouse(row.warehouse)):
        raise NotFound(f"No shipment {shipment_id!r}.")
    data = dict(row._mapping)
    data["ship_to"] = orjson.loads(data["ship_to"])
    return data


def load_for_update(session: Session, shipment_id: str, actor: Identity | None) -> dict[str, Any]:
    """The shipment row, locked for a state change (404 if not the caller's)."""
    return _load(session, shipment_id, actor, lock=True)


@functools.cache
def _children(dialect: str) -> dict[str, Any]:
    """A shipment's child lists, each statement built once per dialect: building a select
    costs a hot read more than executing it. Lines come by SKU in code-point order whatever
    the database's collation, the order :func:`create` answers in (SQLite compares bytes;
    PostgreSQL's "C" collation too)."""
    by: Any = bindparam("shipment_id")
    sku = shipment_lines.c.sku.collate("C") if dialect == "postgresql" else shipment_lines.c.sku
    statements = {
        "lines": select(shipment_lines.c.sku, shipment_lines.c.quantity)
        .where(shipment_lines.c.shipment_id == by)
        .order_by(sku),
        "parcels": select(parcels.c.weight_g, parcels.c.length_mm, parcels.c.width_mm, parcels.c.height_mm)
        .where(parcels.c.shipment_id == by)
        .order_by(parcels.c.seq),
        "history": select(
            shipment_history.c.from_status,
            shipment_history.c.to_status,
            shipment_history.c.cause,
            shipment_history.c.detail,
            shipment_history.c.at,
        )
        .where(shipment_history.c.shipment_id == by)
        .order_by(shipment_history.c.id),
    }
    return {name: prebuilt(stmt) for name, stmt in statements.items()}


_LABEL = prebuilt(
    select(labels.c.carrier, labels.c.service, labels.c.tracking_number, labels.c.format).where(
        labels.c.shipment_id == bindparam("shipment_id")
    )
)


def get(session: Session, actor: Identity, shipment_id: str) -> dict[str, Any]:
    shipment = _load(session, shipment_id, actor)
    dialect = session.get_bind().dialect if isinstance(session, Session) else session.dialect
    params = {"shipment_id": shipment_id}
    for name, stmt in _children(dialect.name).items():
        shipment[name] = [dict(r._mapping) for r in session.execute(stmt, params)]
    shipment["tracking"] = tracking.history(session, shipment_id)
    label = session.execute(_LABEL, params).first()
    shipment["label"] = dict(label._mapping) if label else None
    return shipment


def list_(
    session: Session,
    actor: Identity,
    *,
    status: str | None,
    warehouse: str | None,
    reference: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
    search: str | None = None,
    sort: Sort | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Shipments in ``sort`` order; ``search`` finds a substring (any case) of the
    reference, the recipient's name or the postal code, from their trigram indexes."""
    sort = SHIPMENT_SORTS.of(sort)
    key, ident = shipments.c[sort.name], shipments.c.id
    stmt = select(*_LISTED).order_by(*sort.order_by(key, ident)).limit(limit + 1)
    if search:
        stmt = stmt.where(or_(*(shipments.c[name].icontains(search, autoescape=True) for name in SEARCHED)))
    for column, value in (
        (shipments.c.status, status),
        (shipments.c.warehouse, warehouse),
        (shipments.c.reference, reference),
    ):
        if value:
            stmt = stmt.where(column == value)
    if since:
        stmt = stmt.where(shipments.c.created_at >= since)
    if until:
        stmt = stmt.where(shipments.c.created_at < until)
    if not actor.all_warehouses:
        stmt = stmt.where(shipments.c.warehouse.in_(sorted(actor.warehouses)))
    if cursor:
        stmt = stmt.where(sort.after(key, ident, sort.decode(cursor)))
    rows, next_cursor = sort.page(
        [dict(r._mapping) for r in session.execute(stmt)], limit, lambda r: (r[sort.name], r["id"])
    )
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        for line in session.execute(
            select(shipment_lines).where(shipment_lines.c.shipment_id.in_([r["id"] for r in rows]))
        ):
            lines[line.shipment_id].append({"sku": line.sku, "quantity": line.quantity})
    for row in rows:
        row["ship_to"] = orjson.loads(row["ship_to"])
        row["lines"] = sorted(lines[row["id"]], key=lambda line: line["sku"])
    return rows, next_cursor


def _state(shipment: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "shipment_id": shipment["id"],
        "reference": shipment["reference"],
        "warehouse": shipment["warehouse"],
        "status": status,
        "version": shipment["version"],
    }


def cancel(
    session: Session,
    outbox: Outbox,
    actor: Identity,
    shipment_id: str,
    reason: str | None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Cancel until the shipment is in transit; inventory releases the stock when it hears."""
    shipment = _load(session, shipment_id, actor, lock=True)
    _check_version(shipment, expected_version)
    moved = transition(session, shipment, "cancelled", cause=actor.actor, detail=reason)
    outbox.emit("shipment.cancelled", {**_identity(moved), "reason": reason})
    return get(session, actor, shipment_id)


def retry(
    session: Session,
    outbox: Outbox,
    actor: Identity,
    shipment_id: str,
    hold_for: timedelta | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """``on_hold -> awaiting_stock``: ask inventory again (after stock arrived)."""
    shipment = _load(session, shipment_id, actor, lock=True)
    _check_version(shipment, expected_version)
    transition(session, shipment, "awaiting_stock", cause=actor.actor, hold_reason=None)
    current = get(session, actor, shipment_id)
    _requested(outbox, current, current["lines"], hold_for)
    return current


def _check_version(shipment: dict[str, Any], expected_version: int | None) -> None:
    """``If-Match``: the row is locked, so comparing here is as good as a conditional UPDATE."""
    if expected_version is not None and expected_version != shipment["version"]:
        raise PreconditionFailed.stale("shipment", shipment["version"], expected_version)


def _identity(shipment: dict[str, Any]) -> dict[str, Any]:
    return {
        "shipment_id": shipment["id"],
        "reference": shipment["reference"],
        "warehouse": shipment["warehouse"],
        "version": shipment["version"],
    }


# -- the saga: reactions to inventory's answers ----------------------------------------
def on_stock_reserved(session: Session, outbox: Outbox, data: dict[str, Any], cause: str) -> None:
    shipment = _find(session, data["reference"])
    if shipment is None:
        return  # not one of ours (inventory reserves for other callers too)
    if shipment["status"] == "awaiting_stock":
        moved = transition(
            session, shipment, "ready", cause=cause, reservation_id=str(data["reservation_id"])
        )
        outbox.emit(
            "shipment.ready", {**_state(moved, "ready"), "reservation_id": str(data["reservation_id"])}
        )
    elif shipment["status"] == "cancelled":
        # The cancel overtook the reservation: say it again so inventory releases it.
        outbox.emit(
            "shipment.cancelled", {**_identity(shipment), "reason": "cancelled before stock was reserved"}
        )


def on_reservation_failed(session: Session, outbox: Outbox, data: dict[str, Any], cause: str) -> None:
    shipment = _find(session, data["reference"])
    if shipment is None or shipment["status"] != "awaiting_stock":
        return  # stale answer (e.g. the shipment was cancelled or retried meanwhile)
    moved = transition(
        session, shipment, "on_hold", cause=cause, detail=data["detail"], hold_reason=data["detail"]
    )
    outbox.emit(
        "shipment.on_hold",
        {
            **_state(moved, "on_hold"),
            "reason": data["reason"],
            "detail": data["detail"],
            "shortages": [dict(s) for s in data.get("shortages", [])],
        },
    )


def on_stock_released(session: Session, outbox: Outbox, data: dict[str, Any], cause: str) -> None:
    """An expired reservation puts a ``ready`` shipment on hold (no label bought in time)."""
    shipment = _find(session, data["reference"])
    if shipment is None or data["reason"] != "expired" or shipment["status"] != "ready":
        return
    if shipment["reservation_id"] != str(data["reservation_id"]):
        return
    detail = "The stock reservation expired before a label was bought."
    moved = transition(
        session, shipment, "on_hold", cause=cause, detail=detail, hold_reason=detail, reservation_id=None
    )
    outbox.emit(
        "shipment.on_hold", {**_state(moved, "on_hold"), "reason": "reservation_expired", "detail": detail}
    )


def _find(session: Session, reference: str) -> dict[str, Any] | None:
    try:
        uuid.UUID(str(reference))
    except ValueError:
        return None
    row = session.execute(select(*_LISTED).where(shipments.c.id == str(reference)).with_for_update()).first()
    return dict(row._mapping) if row else None

"""The local read model of shipping's shipments, and tickets opened by events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from logistics_shared.db import insert_unless_exists
from logistics_shared.errors import NotFound
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox

from ..models import auto_tickets, shipment_view, ticket_comments, tickets
from . import lifecycle
from . import tickets as ticket_domain

SYSTEM = "service:support"

#: cause -> (priority, what the subject calls it)
CAUSES = {
    "exception": ("high", "Delivery exception"),
    "delivery_failed": ("normal", "Delivery failed"),
    "reservation_failed": ("high", "Stock shortage"),
}


def automatic_subject(
    cause: str, shipment_id: str, reference: str | None, tracking_number: str | None
) -> str:
    """One style for every cause: ``Stock shortage: order R-1001``,
    ``Delivery exception: order R-1001 (1Z999AA1)``; the shipment's id only while its
    order reference is not known yet."""
    what = CAUSES[cause][1]
    subject = f"{what}: order {reference}" if reference else f"{what}: shipment {shipment_id}"
    if tracking_number:
        subject += f" ({tracking_number})"
    return subject[:200]


def _description(cause: str, data: dict[str, Any]) -> str:
    if cause == "reservation_failed":
        shortages = data.get("shortages") or []
        if not shortages:
            return str(data.get("detail") or "Stock could not be reserved.")
        lines = [f"{s['sku']} | {s['requested']} | {s['available']}" for s in shortages]
        where = f" at {data['warehouse']}" if data.get("warehouse") else ""
        return "\n".join([f"Stock could not be reserved{where}.", "", "sku | requested | available", *lines])
    return str(data.get("detail") or (data.get("tracking") or {}).get("description") or CAUSES[cause][1])


def _at(value: Any) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _tracking_entry(tracking: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": tracking["status"],
        "description": tracking.get("description"),
        "location": tracking.get("location"),
        "occurred_at": _at(tracking["occurred_at"]).isoformat(),
        "source": tracking["source"],
    }


def apply_event(session: Session, event_type: str, occurred_at: Any, data: dict[str, Any]) -> None:
    """Fold one shipping event into ``shipment_view``, in whatever order events arrive.

    The status (and reference, warehouse) come from the newest event: the highest
    shipment version, or by ``occurred_at`` when an event carries none (older
    producers); tracking entries are merged from every event, de-duplicated.
    """
    shipment_id = str(data["shipment_id"])
    at = _at(occurred_at)
    status = "cancelled" if event_type == "shipment.cancelled" else data.get("status")
    if event_type == "shipment.requested":
        status = "awaiting_stock"
    fresh = {
        "shipment_id": shipment_id,
        "reference": data.get("reference"),
        "warehouse": data.get("warehouse"),
        "status": status,
        "tracking_number": data.get("tracking_number"),
        "tracking": orjson.dumps(
            [_tracking_entry(data["tracking"])] if data.get("tracking") else []
        ).decode(),
        "updated_at": at,
        "version": data.get("version"),
    }
    if insert_unless_exists(session, shipment_view, fresh, ["shipment_id"]):
        if data.get("reference") or data.get("tracking_number"):
            _fill_in_automatic_tickets(
                session, shipment_id, data.get("reference"), data.get("tracking_number")
            )
        return
    row = session.execute(
        select(shipment_view).where(shipment_view.c.shipment_id == shipment_id).with_for_update()
    ).one()
    values: dict[str, Any] = {}
    if data.get("tracking"):
        entries = orjson.loads(row.tracking)
        entry = _tracking_entry(data["tracking"])
        if entry not in entries:
            values["tracking"] = orjson.dumps(
                sorted([*entries, entry], key=lambda e: e["occurred_at"])
            ).decode()
    if data.get("tracking_number") and not row.tracking_number:
        values["tracking_number"] = data["tracking_number"]
    if _newer(data.get("version"), at, row):
        values.update(updated_at=at, status=status, version=data.get("version") or row.version)
        values.update({k: data[k] for k in ("reference", "warehouse") if data.get(k)})
    if values:
        session.execute(
            update(shipment_view).where(shipment_view.c.shipment_id == shipment_id).values(**values)
        )
        if "tracking_number" in values or (values.get("reference") and not row.reference):
            reference = values.get("reference") or row.reference
            _fill_in_automatic_tickets(
                session, shipment_id, reference, values.get("tracking_number") or row.tracking_number
            )


def _newer(version: int | None, at: datetime, row: Any) -> bool:
    """Does an event (``version``, ``at``) describe the shipment at least as recently as ``row``?"""
    if version is not None and row.version is not None:
        return version > row.version or (version == row.version and at >= _at(row.updated_at))
    return at >= _at(row.updated_at)


def get(session: Session, shipment_id: str, actor: Identity | None = None) -> dict[str, Any]:
    try:
        uuid.UUID(shipment_id)
    except ValueError:
        raise NotFound(f"No shipment {shipment_id!r}.") from None
    row = session.execute(select(shipment_view).where(shipment_view.c.shipment_id == shipment_id)).first()
    if row is None or (actor is not None and not actor.can_access_warehouse(row.warehouse or "")):
        raise NotFound(f"No shipment {shipment_id!r}.")
    view = dict(row._mapping)
    view["tracking"] = orjson.loads(view["tracking"])
    view["tickets"] = ticket_domain.linked_to_shipment(session, shipment_id)
    return view


def open_automatic_ticket(
    session: Session, outbox: Outbox, shipment_id: str, cause: str, data: dict[str, Any]
) -> dict[str, Any] | None:
    """One ticket per (shipment, cause): a repeated or re-sent event opens nothing more.

    It links what is known of the shipment: the order reference and tracking number
    from the event, else from the read model (a carrier exception carries no tracking
    number; a shortage names the shipment by its id alone)."""
    ticket_id = str(uuid.uuid4())
    claimed = insert_unless_exists(
        session,
        auto_tickets,
        {"shipment_id": shipment_id, "cause": cause, "ticket_id": ticket_id, "created_at": datetime.now(UTC)},
        ["shipment_id", "cause"],
    )
    if not claimed:
        return None
    known = session.execute(
        select(shipment_view.c.reference, shipment_view.c.tracking_number).where(
            shipment_view.c.shipment_id == shipment_id
        )
    ).first()
    # inventory's reference is the shipment's id, not the order's: only shipping's events say it.
    reference = (data.get("reference") if cause != "reservation_failed" else None) or (
        known and known.reference
    )
    tracking_number = data.get("tracking_number") or (known and known.tracking_number) or None
    return ticket_domain.create(
        session,
        outbox,
        SYSTEM,
        {
            "subject": automatic_subject(cause, shipment_id, reference, tracking_number),
            "description": _description(cause, data),
            "type": "incident",
            "priority": CAUSES[cause][0],
            "queue": "shipments",
            "tags": ["automatic", cause],
            "shipment_id": shipment_id,
            "order_reference": reference,
            "tracking_number": tracking_number,
        },
        ticket_id=ticket_id,
    )


def _fill_in_automatic_tickets(
    session: Session, shipment_id: str, known_reference: str | None, known_tracking_number: str | None
) -> None:
    """Link what the read model learnt since to the shipment's automatic tickets.

    A ticket can open before the read model knows the shipment (the shortage and
    ``shipment.requested`` travel on different queues), or before its label: its
    missing order reference and tracking number are filled in now, and a subject
    still as it was generated is generated again (an agent's own is kept). The
    version moves, so an ``If-Match`` taken before no longer matches."""
    stale = session.execute(
        select(
            tickets.c.id,
            tickets.c.subject,
            tickets.c.order_reference,
            tickets.c.tracking_number,
            auto_tickets.c.cause,
        )
        .join(auto_tickets, auto_tickets.c.ticket_id == tickets.c.id)
        .where(
            auto_tickets.c.shipment_id == shipment_id,
            or_(tickets.c.order_reference.is_(None), tickets.c.tracking_number.is_(None)),
        )
    ).all()
    for ticket in stale:
        reference = ticket.order_reference or known_reference
        tracking_number = ticket.tracking_number or known_tracking_number
        if (reference, tracking_number) == (ticket.order_reference, ticket.tracking_number):
            continue
        values: dict[str, Any] = {"order_reference": reference, "tracking_number": tracking_number}
        generated = automatic_subject(
            ticket.cause, shipment_id, ticket.order_reference, ticket.tracking_number
        )
        if ticket.subject == generated:
            values["subject"] = automatic_subject(ticket.cause, shipment_id, reference, tracking_number)
        session.execute(
            update(tickets)
            .where(tickets.c.id == ticket.id)
            .values(version=tickets.c.version + 1, updated_at=datetime.now(UTC), **values)
        )


def on_reservation_failed(session: Session, outbox: Outbox, data: dict[str, Any]) -> dict[str, Any] | None:
    """Inventory could not reserve a shipment's stock: open a ticket (once per shipment)."""
    try:
        shipment_id = str(uuid.UUID(str(data["reference"])))
    except ValueError:
        return None  # not a shipment's reservation (inventory reserves for other callers too)
    return open_automatic_ticket(session, outbox, shipment_id, "reservation_failed", data)


def note_delivery(session: Session, shipment_id: str, occurred_at: Any) -> int:
    """An internal note on the shipment's active tickets (once each); how many were noted."""
    body = f"The shipment was delivered at {_at(occurred_at).isoformat()}."
    active = session.execute(
        select(tickets.c.id).where(
            tickets.c.shipment_id == shipment_id, tickets.c.status.in_(lifecycle.ACTIVE)
        )
    ).scalars()
    noted = 0
    for ticket_id in list(active):
        exists = session.execute(
            select(ticket_comments.c.id).where(
                ticket_comments.c.ticket_id == ticket_id, ticket_comments.c.body == body
            )
        ).first()
        if exists is None:
            ticket_domain.add_comment(session, ticket_id, SYSTEM, body, "internal")
            noted += 1
    return noted

"""Tracking events, from carriers or staff, and the status changes they cause.

Carriers send events late, twice and out of order: an event is recorded once
(by the carrier's own event id), and it moves the shipment only along the
lifecycle's arrows, never backwards. Staff, who act on purpose, get a 409 for
a move the lifecycle does not allow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.db import insert_unless_exists
from logistics_shared.errors import Conflict
from logistics_shared.outbox import Outbox

from ..tracking_models import tracking_events
from .lifecycle import can, transition

#: Statuses that have an event of their own besides shipment.status_changed.
NOTABLE = {
    "exception": "shipment.exception",
    "delivery_failed": "shipment.delivery_failed",
    "delivered": "shipment.delivered",
}


def record(
    session: Session,
    outbox: Outbox,
    shipment: dict[str, Any],
    event: dict[str, Any],
    *,
    source: str,
    cause: str,
    strict: bool,
) -> dict[str, Any] | None:
    """Record ``event``; returns the shipment after it, or ``None`` for a duplicate."""
    now = datetime.now(UTC)
    occurred_at = event.get("occurred_at") or now
    if strict and not can(shipment["status"], event["status"]):
        raise Conflict(
            f"A shipment that is {shipment['status']} cannot become {event['status']}.",
            current_status=shipment["status"],
            requested_status=event["status"],
        )
    values = {
        "shipment_id": shipment["id"],
        "source": source,
        "external_id": event.get("event_id"),
        "status": event["status"],
        "description": event.get("description"),
        "location": event.get("location"),
        "occurred_at": occurred_at,
        "recorded_at": now,
    }
    if values["external_id"] is not None:
        fresh = insert_unless_exists(
            session, tracking_events, values, ["source", "external_id"], returning=(tracking_events.c.id,)
        )
        if fresh is None:
            return None
    else:
        session.execute(tracking_events.insert().values(**values))
    tracking = {
        "status": event["status"],
        "description": event.get("description"),
        "location": event.get("location"),
        "occurred_at": occurred_at.isoformat(),
        "source": source,
    }
    if not can(shipment["status"], event["status"]):
        # Kept in the history; a late or repeated status moves nothing, but the scan (another
        # hub, say) is still news to whoever keeps the tracking history: support's read model.
        outbox.emit(
            "shipment.tracked",
            {
                "shipment_id": shipment["id"],
                "reference": shipment["reference"],
                "warehouse": shipment["warehouse"],
                "status": shipment["status"],
                "version": shipment["version"],
                "tracking": tracking,
            },
        )
        return shipment
    previous = shipment["status"]
    moved = transition(session, shipment, event["status"], cause=cause, detail=event.get("description"))
    body = {
        "shipment_id": moved["id"],
        "reference": moved["reference"],
        "warehouse": moved["warehouse"],
        "status": moved["status"],
        "version": moved["version"],
        "previous_status": previous,
        "tracking": tracking,
    }
    outbox.emit("shipment.status_changed", body)
    if event["status"] in NOTABLE:
        outbox.emit(NOTABLE[event["status"]], body)
    return moved


def history(session: Session, shipment_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in session.execute(
            select(
                tracking_events.c.status,
                tracking_events.c.description,
                tracking_events.c.location,
                tracking_events.c.occurred_at,
                tracking_events.c.source,
            )
            .where(tracking_events.c.shipment_id == shipment_id)
            .order_by(tracking_events.c.occurred_at, tracking_events.c.id)
        )
    ]

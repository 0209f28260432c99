"""Tracking events, from carriers or staff, and the status changes they cause.

Carriers send events late, twice and out of order: an event is recorded once
(by the carrier's own event id, per tracking number), and it moves the shipment
only along the lifecycle's arrows, never backwards — and never when it happened
before the latest event already recorded (a late ``exception`` must not pull a
shipment back, nor open a ticket). Staff, who act on purpose, get a 409 for a
move the lifecycle does not allow or an event older than the latest one.

An event cannot have happened before the shipment existed, nor more than
:data:`CLOCK_SKEW` in the future: both are 422s at ``/occurred_at``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from logistics_shared.db import aware, insert_unless_exists
from logistics_shared.errors import Conflict, InvalidField
from logistics_shared.outbox import Outbox
from logistics_shared.readpath import prebuilt

from ..models import tracking_events
from .changes import shipment_changed
from .lifecycle import can, transition

#: How far ahead of our clock a carrier's clock may run.
CLOCK_SKEW = timedelta(minutes=5)

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
    _check_time(shipment, occurred_at, now)
    latest = latest_event_at(session, shipment["id"])
    stale = latest is not None and occurred_at < latest
    if strict and not can(shipment["status"], event["status"]):
        raise Conflict(
            f"A shipment that is {shipment['status']} cannot become {event['status']}.",
            current_status=shipment["status"],
            requested_status=event["status"],
        )
    if strict and stale:
        assert latest is not None  # stale means older than a recorded event
        raise Conflict(
            f"The event happened before the latest one recorded ({latest.isoformat()}).",
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
            session,
            tracking_events,
            values,
            ["source", "shipment_id", "external_id"],
            returning=(tracking_events.c.id,),
        )
        if fresh is None:
            return None
    else:
        session.execute(tracking_events.insert().values(**values))
    shipment_changed(session, shipment["id"])
    tracking = {
        "status": event["status"],
        "description": event.get("description"),
        "location": event.get("location"),
        "occurred_at": occurred_at.isoformat(),
        "source": source,
    }
    if stale or not can(shipment["status"], event["status"]):
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


def _check_time(shipment: dict[str, Any], occurred_at: datetime, now: datetime) -> None:
    if occurred_at > now + CLOCK_SKEW:
        raise InvalidField(
            "/occurred_at", f"Must not be more than {int(CLOCK_SKEW.total_seconds() // 60)} minutes ahead."
        )
    created_at = aware(shipment["created_at"])
    if created_at is not None and occurred_at < created_at:
        raise InvalidField("/occurred_at", "Must not be before the shipment was created.")


def latest_event_at(session: Session, shipment_id: str) -> datetime | None:
    """When the newest recorded event happened (index-backed: shipment, occurred_at)."""
    return aware(
        session.execute(
            select(func.max(tracking_events.c.occurred_at)).where(
                tracking_events.c.shipment_id == shipment_id
            )
        ).scalar()
    )


#: Built once: building a select costs a hot read more than executing it.
_HISTORY = prebuilt(
    select(
        tracking_events.c.status,
        tracking_events.c.description,
        tracking_events.c.location,
        tracking_events.c.occurred_at,
        tracking_events.c.source,
    )
    .where(tracking_events.c.shipment_id == bindparam("shipment_id"))
    .order_by(tracking_events.c.occurred_at, tracking_events.c.id)
)


def history(session: Session, shipment_id: str) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in session.execute(_HISTORY, {"shipment_id": shipment_id})]

"""The shipment lifecycle as an explicit state machine.

Every transition is one conditional ``UPDATE ... WHERE status = :from``, so
two concurrent actors cannot both move a shipment, and every transition is
recorded with its cause.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from logistics_shared.errors import Conflict

from ..models import shipment_history, shipments
from .changes import shipment_changed

TRANSITIONS: dict[str, frozenset[str]] = {
    "awaiting_stock": frozenset({"ready", "on_hold", "cancelled"}),
    # ready -> on_hold when the reservation expires before a label is bought.
    "ready": frozenset({"label_purchased", "on_hold", "cancelled"}),
    # on_hold -> awaiting_stock when staff retry once stock arrived.
    "on_hold": frozenset({"awaiting_stock", "cancelled"}),
    "label_purchased": frozenset({"in_transit", "exception", "cancelled"}),
    "in_transit": frozenset({"out_for_delivery", "delivered", "exception", "delivery_failed", "returned"}),
    "out_for_delivery": frozenset({"delivered", "delivery_failed", "exception"}),
    "exception": frozenset({"in_transit", "out_for_delivery", "delivery_failed", "returned"}),
    "delivery_failed": frozenset({"out_for_delivery", "returned"}),
    "delivered": frozenset(),
    "returned": frozenset(),
    "cancelled": frozenset(),
}


def can(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def transition(
    session: Session,
    shipment: dict[str, Any],
    target: str,
    *,
    cause: str,
    detail: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Move ``shipment`` to ``target`` or raise a 409 naming its current state."""
    current = shipment["status"]
    if not can(current, target):
        raise Conflict(
            f"A shipment that is {current} cannot become {target}.",
            current_status=current,
            requested_status=target,
        )
    now = datetime.now(UTC)
    row = session.execute(
        update(shipments)
        .where(shipments.c.id == shipment["id"], shipments.c.status == current)
        .values(status=target, version=shipments.c.version + 1, updated_at=now, **changes)
        .returning(shipments.c.version)
    ).first()
    if row is None:
        raise Conflict("The shipment changed while this request ran; fetch it and try again.")
    shipment_changed(session, shipment["id"])
    session.execute(
        shipment_history.insert().values(
            shipment_id=shipment["id"],
            from_status=current,
            to_status=target,
            cause=cause,
            detail=detail,
            at=now,
        )
    )
    return {**shipment, **changes, "status": target, "version": row.version, "updated_at": now}

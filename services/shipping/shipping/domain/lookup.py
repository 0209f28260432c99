"""``GET /v1/tracking/{number}``: a shipment's status and tracking history by tracking number."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from logistics_shared.errors import NotFound
from logistics_shared.readpath import prebuilt

from ..models import labels, shipments
from .tracking import history

#: Built once: building a select costs a hot read more than executing it.
_BY_NUMBER = prebuilt(
    select(
        labels.c.tracking_number,
        labels.c.carrier,
        labels.c.service,
        shipments.c.id.label("shipment_id"),
        shipments.c.reference,
        shipments.c.warehouse,
        shipments.c.status,
    )
    .join(shipments, shipments.c.id == labels.c.shipment_id)
    .where(labels.c.tracking_number == bindparam("number"))
)


def by_tracking_number(session: Session, number: str) -> dict[str, Any] | None:
    """Everything the lookup shows, as plain JSON-ready data (it is cached as is)."""
    row = session.execute(_BY_NUMBER, {"number": number}).first()
    if row is None:
        return None
    data = dict(row._mapping)
    data["events"] = [
        {**event, "occurred_at": event["occurred_at"].isoformat()}
        for event in history(session, data["shipment_id"])
    ]
    return data


def shipment_for_tracking_number(session: Session, carrier: str, number: str) -> str | None:
    return session.execute(
        select(labels.c.shipment_id).where(labels.c.tracking_number == number, labels.c.carrier == carrier)
    ).scalar()


def not_found(number: str) -> NotFound:
    return NotFound(f"No shipment with tracking number {number!r}.")


def tracking_number_of(session: Session, shipment_id: str) -> str | None:
    return session.execute(
        select(labels.c.tracking_number).where(labels.c.shipment_id == shipment_id)
    ).scalar()

"""Support's event handlers: thin, like views; the read model and the automatic
tickets are ``domain.shipments``'s rules.

Each runs inside the consumer's transaction together with the inbox row, so
an event is applied exactly once however often it is delivered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from logistics_shared.bus.handlers import Handler, Subscriptions, subscribe
from logistics_shared.outbox import Outbox

from .domain import shipments

SHIPMENT_EVENTS = (
    "shipment.requested",
    "shipment.ready",
    "shipment.on_hold",
    "shipment.label_purchased",
    "shipment.status_changed",
    "shipment.tracked",
    "shipment.cancelled",
    "shipment.delivered",
    "shipment.exception",
    "shipment.delivery_failed",
)


def shipment_view(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.apply_event(session, envelope["type"], envelope["occurred_at"], envelope["data"])


def shipment_trouble(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    cause = envelope["type"].removeprefix("shipment.")
    data = envelope["data"]
    shipments.open_automatic_ticket(session, outbox, str(data["shipment_id"]), cause, data)


def reservation_failed(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.on_reservation_failed(session, outbox, envelope["data"])


def delivery_note(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.note_delivery(session, str(envelope["data"]["shipment_id"]), envelope["occurred_at"])


#: What support consumes (``logistics events`` prints the whole suite's map).
SUBSCRIPTIONS: Subscriptions = {
    shipment_view: SHIPMENT_EVENTS,
    shipment_trouble: ("shipment.exception", "shipment.delivery_failed"),
    reservation_failed: ("stock.reservation_failed",),
    delivery_note: ("shipment.delivered",),
}


def handlers() -> tuple[Handler, ...]:
    return subscribe(SUBSCRIPTIONS)

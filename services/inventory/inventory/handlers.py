"""Inventory's event handlers: thin, like views; the saga's rules live in ``domain.saga``.

Each runs inside the consumer's transaction together with the inbox row, so
an event is applied exactly once however often it is delivered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from logistics_shared.bus.handlers import Handler, Subscriptions, subscribe
from logistics_shared.outbox import Outbox

from .domain import saga


def shipment_requested(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    """``shipment.requested`` -> ``stock.reserved`` or ``stock.reservation_failed``."""
    saga.on_shipment_requested(session, outbox, envelope["data"])


def shipment_cancelled(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    """``shipment.cancelled`` -> the reservation is released, or its issued stock put back."""
    saga.on_shipment_cancelled(session, outbox, str(envelope["data"]["shipment_id"]))


def shipment_label_purchased(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    """``shipment.label_purchased`` -> the shipment's reservation is issued."""
    saga.on_label_purchased(session, outbox, str(envelope["data"]["shipment_id"]))


#: What inventory consumes (``logistics events`` prints the whole suite's map).
SUBSCRIPTIONS: Subscriptions = {
    shipment_requested: ("shipment.requested",),
    shipment_cancelled: ("shipment.cancelled",),
    shipment_label_purchased: ("shipment.label_purchased",),
}


def handlers() -> tuple[Handler, ...]:
    return subscribe(SUBSCRIPTIONS)

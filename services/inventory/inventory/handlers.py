"""Inventory's event handlers: thin, like views; the saga's rules live in ``domain.saga``.

Each runs inside the consumer's transaction together with the inbox row, so
an event is applied exactly once however often it is delivered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from logistics_shared.bus.handlers import Handler
from logistics_shared.outbox import Outbox

from .domain import saga


def reserve_for_shipment(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    """``shipment.requested`` -> ``stock.reserved`` or ``stock.reservation_failed``."""
    saga.on_shipment_requested(session, outbox, envelope["data"])


def release_for_cancelled_shipment(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    """``shipment.cancelled`` -> the reservation is released, or its issued stock put back."""
    saga.on_shipment_cancelled(session, outbox, str(envelope["data"]["shipment_id"]))


def consume_for_label(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    """``shipment.label_purchased`` -> the shipment's reservation is issued."""
    saga.on_label_purchased(session, outbox, str(envelope["data"]["shipment_id"]))


def handlers() -> tuple[Handler, ...]:
    return (
        Handler(
            "shipment_requested",
            producer="shipping",
            events=("shipment.requested",),
            func=reserve_for_shipment,
        ),
        Handler(
            "shipment_cancelled",
            producer="shipping",
            events=("shipment.cancelled",),
            func=release_for_cancelled_shipment,
        ),
        Handler(
            "shipment_label_purchased",
            producer="shipping",
            events=("shipment.label_purchased",),
            func=consume_for_label,
        ),
    )

"""Shipping's event handlers: inventory's answers move shipments along the saga.

Thin, like views: each decodes the envelope and calls ``domain.shipments``,
inside the consumer's transaction together with the inbox row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from logistics_shared.bus.handlers import Handler, Subscriptions, subscribe
from logistics_shared.outbox import Outbox

from .domain import shipments


def _cause(envelope: dict[str, Any]) -> str:
    return f"event:{envelope['type']}:{envelope['id']}"


def stock_reserved(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.on_stock_reserved(session, outbox, envelope["data"], _cause(envelope))


def reservation_failed(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.on_reservation_failed(session, outbox, envelope["data"], _cause(envelope))


def stock_released(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.on_stock_released(session, outbox, envelope["data"], _cause(envelope))


#: What shipping consumes (``logistics events`` prints the whole suite's map).
SUBSCRIPTIONS: Subscriptions = {
    stock_reserved: ("stock.reserved",),
    reservation_failed: ("stock.reservation_failed",),
    stock_released: ("stock.released",),
}


def handlers() -> tuple[Handler, ...]:
    return subscribe(SUBSCRIPTIONS)

"""Shipping's event handlers: inventory's answers move shipments along the saga.

Thin, like views: each decodes the envelope and calls ``domain.shipments``,
inside the consumer's transaction together with the inbox row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from logistics_shared.bus.handlers import Handler
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


def handlers() -> tuple[Handler, ...]:
    return (
        Handler("stock_reserved", producer="inventory", events=("stock.reserved",), func=stock_reserved),
        Handler(
            "reservation_failed",
            producer="inventory",
            events=("stock.reservation_failed",),
            func=reservation_failed,
        ),
        Handler("stock_released", producer="inventory", events=("stock.released",), func=stock_released),
    )

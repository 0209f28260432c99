"""Shipping's event handlers: inventory's answers move shipments along the saga, and
inventory's catalogue events keep shipping's read model of items and warehouses.

Thin, like views: each decodes the envelope and calls ``domain.shipments``,
inside the consumer's transaction together with the inbox row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from logistics_shared.bus.drain import DrainWatch
from logistics_shared.bus.handlers import Handler, Subscriptions, subscribe
from logistics_shared.outbox import Outbox

from .domain import catalogue as catalogue_model
from .domain import shipments
from .models import drain_marks


def _cause(envelope: dict[str, Any]) -> str:
    return f"event:{envelope['type']}:{envelope['id']}"


def stock_reserved(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.on_stock_reserved(session, outbox, envelope["data"], _cause(envelope))


def reservation_failed(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.on_reservation_failed(session, outbox, envelope["data"], _cause(envelope))


def stock_released(session: Session, envelope: dict[str, Any], outbox: Outbox) -> None:
    shipments.on_stock_released(session, outbox, envelope["data"], _cause(envelope))


def catalogue(session: Session, envelope: dict[str, Any], _outbox: Outbox) -> None:
    """One queue for items and warehouses: its drain mark says whether the read model is synced."""
    if envelope["type"].startswith("item."):
        catalogue_model.apply_item(session, envelope["data"])
    else:
        catalogue_model.apply_warehouse(session, envelope["data"])


#: What shipping consumes (``logistics events`` prints the whole suite's map).
SUBSCRIPTIONS: Subscriptions = {
    stock_reserved: ("stock.reserved",),
    reservation_failed: ("stock.reservation_failed",),
    stock_released: ("stock.released",),
    catalogue: ("item.created", "item.updated", "warehouse.created", "warehouse.updated"),
}


def handlers() -> tuple[Handler, ...]:
    return subscribe(SUBSCRIPTIONS)


def drain_watch() -> DrainWatch:
    return DrainWatch(drain_marks, (catalogue_model.HANDLER,))

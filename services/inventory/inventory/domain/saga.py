"""Inventory's side of the shipment saga: what shipping's events do to reservations.

Each function runs inside the consumer's transaction together with the inbox
row (see ``handlers``), so an event is applied exactly once however often it is
delivered; the answers to shipping go out through the same transaction's outbox.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.errors import Conflict, ValidationFailed
from logistics_shared.identity import Identity, Role
from logistics_shared.outbox import Outbox

from ..models import reservations as reservations_table
from . import reservations

#: Who the ledger and reservations name when the saga acts.
SAGA = Identity(subject="shipping-saga", role=Role.SERVICE)


def _reservation_for(session: Session, reference: str, status: str) -> str | None:
    return session.execute(
        select(reservations_table.c.id).where(
            reservations_table.c.reference == reference, reservations_table.c.status == status
        )
    ).scalar()


def on_shipment_requested(session: Session, outbox: Outbox, data: dict[str, Any]) -> None:
    """``shipment.requested`` -> ``stock.reserved`` or ``stock.reservation_failed``."""
    reference = str(data["shipment_id"])
    active = _reservation_for(session, reference, "active")
    if active is not None:
        # A re-request (staff retry) while a hold exists: confirm it again, reserve nothing.
        held = reservations.get_reservation(session, SAGA, active)
        outbox.emit(
            "stock.reserved",
            {
                "reservation_id": held["id"],
                "warehouse": held["warehouse"],
                "reference": reference,
                "lines": held["lines"],
                "expires_at": held["expires_at"].isoformat() if held["expires_at"] else None,
            },
        )
        return
    request = {
        "warehouse": data["warehouse"],
        "reference": reference,
        "lines": [{"sku": line["sku"], "quantity": line["quantity"]} for line in data["lines"]],
        "expires_at": data.get("hold_until"),
    }
    failure: dict[str, Any] | None = None
    try:
        # A savepoint: a refused reservation leaves nothing behind but the failure event.
        with session.begin_nested():
            reservations.reserve(session, outbox, SAGA, request)
    except Conflict as exc:
        failure = {
            "reason": "shortage",
            "detail": exc.detail,
            "shortages": exc.extensions.get("shortages", []),
        }
    except ValidationFailed as exc:
        detail = "; ".join(f"{e['pointer']}: {e['detail']}" for e in exc.errors)
        failure = {"reason": "invalid_request", "detail": detail, "shortages": []}
    if failure is not None:
        outbox.emit(
            "stock.reservation_failed", {"reference": reference, "warehouse": data["warehouse"], **failure}
        )


def on_shipment_cancelled(session: Session, outbox: Outbox, shipment_id: str) -> None:
    """``shipment.cancelled`` -> the shipment's active reservation is released, or,
    if a label was already bought and the stock issued, it is put back."""
    active = _reservation_for(session, shipment_id, "active")
    if active is not None:
        reservations.release(session, outbox, SAGA, active)
        return
    consumed = _reservation_for(session, shipment_id, "consumed")
    if consumed is not None:
        reservations.restock_consumed(session, outbox, SAGA, consumed)


def on_label_purchased(session: Session, outbox: Outbox, shipment_id: str) -> None:
    """``shipment.label_purchased`` -> the shipment's active reservation is issued.

    If the hold expired just before the label was bought (the two crossed on
    the bus), the goods are still expected to leave: reserve the same lines
    again and issue them, or report the shortage. Already consumed (a replay)
    or cancelled: nothing to do.
    """
    if _reservation_for(session, shipment_id, "consumed") is not None:
        return
    active = _reservation_for(session, shipment_id, "active")
    if active is None:
        expired = _reservation_for(session, shipment_id, "expired")
        if expired is None:
            return
        held = reservations.get_reservation(session, SAGA, expired)
        request = {
            "warehouse": held["warehouse"],
            "reference": shipment_id,
            "lines": held["lines"],
            "expires_at": None,
        }
        try:
            with session.begin_nested():
                active = reservations.reserve(session, outbox, SAGA, request)["id"]
        except Conflict as exc:
            outbox.emit(
                "stock.reservation_failed",
                {
                    "reference": shipment_id,
                    "warehouse": held["warehouse"],
                    "reason": "shortage",
                    "detail": f"Label bought after the hold expired: {exc.detail}",
                    "shortages": exc.extensions.get("shortages", []),
                },
            )
            return
    reservations.consume(session, outbox, SAGA, active)

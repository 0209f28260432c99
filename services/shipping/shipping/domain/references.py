"""One live shipment per (warehouse, reference), unless the caller asks for another.

A client that retries a create without an ``Idempotency-Key`` (a timeout, a crash
before it read the answer) must not make a second shipment, which would reserve the
stock twice. So a create whose reference a shipment of the same warehouse already
carries, and that shipment is not cancelled, is a 409 naming it; the body field
``allow_duplicate_reference: true`` says the duplicate is meant (a re-shipment under
the order's number), and then no check is made at all.

**Concurrency.** Two creates of one reference can run at once (two replicas, a client
retrying before its first request finished). The check and the insert are made one
decision by a transaction-scoped advisory lock on (warehouse, reference), taken before
the check reads, and held until the transaction (and so its insert) commits or rolls
back: the second create waits at the lock, then reads a snapshot that has the first
one's row, and answers 409. Not a partial unique index: that cannot express the rule
(a create without the opt-out conflicts with *every* live shipment of the reference,
including the ones that were allowed as duplicates, which an index on them would have
to exclude), and its violation would surface at the COMMIT, where the inserts are sent
(:func:`~logistics_shared.db.execute_at_commit`), too late to name the existing shipment.

On PostgreSQL the lock and the read are one statement, the function
``shipping_live_shipment`` of migration 0011: a statement that took the lock and read
in one query would read with the snapshot it began with, before the wait, and miss the
row the lock was waiting for; a VOLATILE function takes a new snapshot for each query
it runs, so its read comes after the wait (READ COMMITTED, the engines' isolation).
That costs one round trip per create, the read itself. SQLite needs no lock: its
writers are serialised from BEGIN (``BEGIN IMMEDIATE``, ``logistics_shared.db``).
A create with the opt-out neither reads nor locks: racing one without it, both may
commit, which is what the opt-out's caller asked for.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from logistics_shared.db import aware
from logistics_shared.errors import Conflict

from ..models import shipments


class DuplicateReference(Conflict):
    """409: a live shipment of the same warehouse already carries this reference."""

    slug, title = "duplicate-shipment-reference", "Duplicate shipment reference"

    def __init__(self, existing: dict[str, Any]) -> None:
        self.existing = existing
        super().__init__(
            f"Shipment {existing['id']} from {existing['warehouse']} already has reference "
            f"{existing['reference']!r} and is {existing['status']}; send "
            '"allow_duplicate_reference": true to create another one.',
            existing_shipment=existing,
        )

    def linked(self, href: str) -> DuplicateReference:
        """The same problem with the existing shipment's path (the view knows the routes)."""
        self.extensions["existing_shipment"] = {**self.existing, "href": href}
        return self


#: Migration 0011's function: the advisory lock, then the oldest live shipment.
_LIVE_PG = text("SELECT id, status, created_at FROM shipping_live_shipment(:warehouse, :reference)")
#: The same read on SQLite.
_LIVE = (
    select(shipments.c.id, shipments.c.status, shipments.c.created_at)
    .where(
        shipments.c.warehouse == bindparam("warehouse"),
        shipments.c.reference == bindparam("reference"),
        shipments.c.status != "cancelled",
    )
    .order_by(shipments.c.created_at, shipments.c.id)
    .limit(1)
)


def refuse_duplicate(session: Session, warehouse: str, reference: str) -> None:
    """Raise :class:`DuplicateReference` if a shipment of ``warehouse`` that is not
    cancelled has ``reference``; otherwise hold (warehouse, reference) until the
    transaction ends, so no concurrent create of it can pass this check too."""
    on_postgres = session.get_bind().dialect.name == "postgresql"
    params = {"warehouse": warehouse, "reference": reference}
    row = session.execute(_LIVE_PG if on_postgres else _LIVE, params).first()
    if row is not None:
        raise DuplicateReference(
            {
                "id": row.id,
                "reference": reference,
                "warehouse": warehouse,
                "status": row.status,
                "created_at": aware(row.created_at).isoformat(),
            }
        )

"""Which shipments a transaction changed, so readers' caches drop them after commit.

The tracking lookup is cached in-process and in Redis. Any write that changes
what it shows — a status transition (from a request, a consumer or a sweeper)
or a new tracking event — marks the shipment on its session here; the cache
listener (wired in ``configure()``) forgets those lookups once the transaction
has committed, and only then: a reader in between would cache the old state
again. Plain data on ``Session.info``: no Pyramid, works in every process kind.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

_KEY = "shipping.changed_shipments"


def shipment_changed(session: Session, shipment_id: str) -> None:
    session.info.setdefault(_KEY, set()).add(shipment_id)


def take_changed(session: Session) -> set[str]:
    """The shipments marked since the last call (and forget them)."""
    return session.info.pop(_KEY, set())

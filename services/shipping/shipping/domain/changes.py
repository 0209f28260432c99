"""Which shipments a transaction changed, so readers' caches drop them after commit.

The tracking lookup is cached in-process and in Redis. Any write that changes
what it shows — a status transition (from a request, a consumer or a sweeper)
or a new tracking event — marks the shipment on its session here; the cache
listener below (``invalidate_after_commit``, wired in ``configure()``) forgets
those lookups once the transaction has committed, and only then: a reader in
between would cache the old state again. Plain data on ``Session.info`` and
session events: no Pyramid, works in every process kind.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from logistics_shared.cache import TwoLevelCache

from ..models import labels

_KEY = "shipping.changed_shipments"
_NUMBERS = "shipping.changed_tracking_numbers"


def shipment_changed(session: Session, shipment_id: str) -> None:
    session.info.setdefault(_KEY, set()).add(shipment_id)


def take_changed(session: Session) -> set[str]:
    """The shipments marked since the last call (and forget them)."""
    return session.info.pop(_KEY, set())


def invalidate_after_commit(factory: sessionmaker[Session], cache: TwoLevelCache) -> None:
    """Forget the lookups of every shipment a committed transaction changed."""

    def before_commit(session: Session) -> None:
        changed = take_changed(session)
        if changed:
            # Still inside the transaction: the numbers can be read here, not after.
            numbers = session.execute(
                select(labels.c.tracking_number).where(labels.c.shipment_id.in_(sorted(changed)))
            ).scalars()
            session.info.setdefault(_NUMBERS, set()).update(numbers)

    def after_commit(session: Session) -> None:
        for number in session.info.pop(_NUMBERS, ()):
            cache.invalidate(number)

    def after_rollback(session: Session, *_: Any) -> None:
        take_changed(session)
        session.info.pop(_NUMBERS, None)

    event.listen(factory, "before_commit", before_commit)
    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_soft_rollback", after_rollback)

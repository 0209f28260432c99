"""The tracking lookup cache and the listener that keeps it honest after writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from logistics_shared.cache import TwoLevelCache
from logistics_shared.settings import Settings

from .carrier_models import labels
from .domain.changes import take_changed

_NUMBERS = "shipping.changed_tracking_numbers"


def tracking_cache(settings: Settings) -> TwoLevelCache:
    return TwoLevelCache(
        "tracking",
        redis_url=settings.redis_url if settings.cache_shared_seconds > 0 else "",
        local_ttl=settings.cache_local_seconds,
        shared_ttl=max(settings.cache_shared_seconds, 1),
    )


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

"""Releases expired reservations in the background (``logistics up`` and the worker)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from logistics_shared.outbox import Outbox

from ..models import outbox as outbox_table
from .reservations import expire_due

log = logging.getLogger(__name__)


def sweep_expired(session_factory: sessionmaker[Session], *, producer: str, batch: int = 100) -> int:
    """Expire due reservations in batches, one transaction per batch; returns how many."""
    total = 0
    while True:
        with session_factory() as session, session.begin():
            done = expire_due(session, Outbox(session, outbox_table, producer=producer), limit=batch)
        total += done
        if done < batch:
            break
    if total:
        log.info("expired %d reservations", total)
    return total

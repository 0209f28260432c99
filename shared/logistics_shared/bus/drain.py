"""Drain marks: when a read model's consumer last had nothing left to apply.

A service that checks requests against a read model built from another service's
events (shipping's catalogue of items and warehouses) may call a reference
"unknown" only while that read model has caught up: an item created a second ago
whose event still waits in the queue is not a typo. The web cannot ask the broker
on every request, so the consumer writes down what it sees, in the service's own
database, and the web reads that row (one ``SELECT``, no broker call).

The rule, per watched handler (one row of ``drain_marks``):

* ``drained_at`` is set to now while the handler's queue is idle: no delivery for
  :data:`IDLE_SECONDS` while its consumer was consuming, rewritten at most once per
  :data:`IDLE_SECONDS`. A consumer settles every delivery before it waits for more
  and its prefetch is per consumer, so a second without a delivery means the
  broker had nothing ready in that queue.
* ``drained_at`` is cleared (NULL) *before* a batch of the handler is applied, on
  the first delivery after an idle spell, and when the consumer starts, stops or
  loses its connection (a mark from before says nothing about the queue now). So a backlog makes the
  web stop trusting the read model at its first message, not when a mark has aged.
* A message of the handler sent to a retry queue holds the marks back until its
  delay is over (and a further idle second): it is still to be applied.

Readers treat a missing row, a NULL or a mark older than their freshness bound as
"lagging". What a mark cannot see: events the producer has not published yet
(its outbox), and, with several worker replicas, a batch another replica is
applying in the second after this one went idle. A dead-lettered message is not
waited for (the DLQ alert is about it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from ..logs import describe_error

log = logging.getLogger(__name__)

#: Seconds without a delivery after which a handler's queue counts as drained (the
#: consumer's own wait for deliveries is one second too).
IDLE_SECONDS = 1.0


def add_drain_marks_table(metadata: MetaData) -> Table:
    """The ``drain_marks`` table, on the metadata of a service that keeps them."""
    return Table(
        "drain_marks",
        metadata,
        Column("handler", String(200), primary_key=True),
        Column("drained_at", DateTime(timezone=True), nullable=True),
    )


@dataclass(frozen=True)
class DrainWatch:
    """The handlers whose queues a service's consumers keep drain marks for (``ServiceSpec.drain_watch``)."""

    table: Table
    handlers: tuple[str, ...]


class DrainMarker:
    """One consumer's bookkeeping: when each watched handler last had a delivery, and the
    writes of its marks. Called from the consumer's own thread only."""

    def __init__(
        self,
        watch: DrainWatch,
        session_factory: sessionmaker[Session],
        *,
        idle: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = watch.table
        self.watched = frozenset(watch.handlers)
        self.session_factory = session_factory
        self.idle_seconds = idle
        self.clock = clock
        self._started = clock()
        self._last_delivery: dict[str, float] = {}
        self._marked_at: dict[str, float] = {}
        self._held_until: dict[str, float] = {}
        #: Handlers whose mark this consumer cleared and has not set again.
        self._cleared: set[str] = set()

    def started(self) -> None:
        """The consumer (re)started consuming: forget marks from before, wait a full idle spell."""
        self._started = self.clock()
        self._marked_at.clear()
        self._cleared.clear()
        self._clear(self.watched)

    def stopped(self) -> None:
        """The consumer stopped (shut down, or lost its connection): its marks no longer hold."""
        self._clear(self.watched)

    def delivered(self, handlers: Iterable[str]) -> None:
        """Deliveries of ``handlers`` are about to be applied: clear their marks first."""
        now = self.clock()
        mine = self.watched.intersection(handlers)
        for name in mine:
            self._last_delivery[name] = now
        self._clear(mine - self._cleared)

    def retried(self, handler: str, delay: float) -> None:
        """A message of ``handler`` went to a retry queue for ``delay`` seconds."""
        if handler in self.watched:
            self._held_until[handler] = max(self._held_until.get(handler, 0.0), self.clock() + delay)
            self._clear({handler} - self._cleared)

    def idle(self) -> None:
        """Between batches: mark every watched handler that has been idle long enough."""
        now = self.clock()
        due = [
            name
            for name in self.watched
            if now
            - max(
                self._last_delivery.get(name, -math.inf), self._started, self._held_until.get(name, -math.inf)
            )
            >= self.idle_seconds
            and now - self._marked_at.get(name, -math.inf) >= self.idle_seconds
        ]
        if not due:
            return
        if self._write_drained(due):
            for name in due:
                self._marked_at[name] = now
                self._cleared.discard(name)

    # -- writes: a failed one is logged, never raised into the consumer ----------------
    def _clear(self, handlers: Iterable[str]) -> None:
        names = sorted(handlers)
        if not names:
            return
        try:
            with self.session_factory() as session, session.begin():
                session.execute(
                    update(self.table).where(self.table.c.handler.in_(names)).values(drained_at=None)
                )
        except Exception as exc:  # noqa: BLE001 - the read model then looks drained a little longer
            log.warning("drain marks not cleared: %s", describe_error(exc))
            return
        self._cleared.update(names)
        for name in names:
            self._marked_at.pop(name, None)

    def _write_drained(self, handlers: list[str]) -> bool:
        now = datetime.now(UTC)
        try:
            with self.session_factory() as session, session.begin():
                dialect = session.get_bind().dialect.name
                insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
                stmt = insert(self.table).values(
                    [{"handler": name, "drained_at": now} for name in sorted(handlers)]
                )
                session.execute(
                    stmt.on_conflict_do_update(index_elements=["handler"], set_={"drained_at": now})
                )
        except Exception as exc:  # noqa: BLE001 - try again at the next idle check
            log.warning("drain marks not written: %s", describe_error(exc))
            return False
        return True

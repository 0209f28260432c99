"""A SQLAlchemy ``QueuePool`` that reports itself to :class:`~.metrics.PoolMetrics`.

Pool events cannot time a checkout (there is no event before it) and fire before the
pool's counters change on return, so the pool reports after each checkout and return
instead: connections checked out, held and in overflow, and, when a checkout found
the pool exhausted, how long it waited (or that it timed out). Engines get it from
:func:`pool_options`, and ``engine.dispose()`` (gunicorn's ``post_fork``) keeps it:
``QueuePool.recreate`` builds the new pool from the same class.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from sqlalchemy import exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from .metrics import PoolMetrics


class _Meter:
    """One pool's metric children, looked up once."""

    def __init__(self, metrics: PoolMetrics, engine: str) -> None:
        labels = (metrics.service, engine)
        self.checked_out = metrics.checked_out.labels(*labels)
        self.connections = metrics.connections.labels(*labels)
        self.overflow = metrics.overflow.labels(*labels)
        self.wait_seconds = metrics.wait_seconds.labels(*labels)
        self.timeouts = metrics.timeouts.labels(*labels)
        self._last: tuple[int, int, int] | None = None

    def forget(self) -> None:
        self._last = None

    def update(self, pool: QueuePool) -> None:
        # Called on every checkout and return, so as cheap as it can be: one look at the
        # pool's queue (checkedout() would take its lock a second time) and a set() only
        # for a value that changed, since each set() takes the metric's lock (or writes
        # its mmap file). A read's checkout and return move only checked_out.
        idle, overflow, size = pool.checkedin(), pool.overflow(), pool.size()
        # QueuePool.checkedout(), from the same look (overflow() is 0 for an unbounded pool).
        in_use = size - idle + overflow if size else pool.checkedout()
        state = (in_use, idle + in_use, max(0, overflow))
        last = self._last
        if state == last:
            return
        self._last = state
        if last is None or state[0] != last[0]:
            self.checked_out.set(state[0])
        if last is None or state[1] != last[1]:
            self.connections.set(state[1])
        if last is None or state[2] != last[2]:
            self.overflow.set(state[2])


class MeteredQueuePool(QueuePool):
    """``QueuePool`` plus metrics; :func:`metered_pool_class` binds it to a service's metrics."""

    meter: ClassVar[_Meter | None] = None

    def _do_get(self) -> ConnectionPoolEntry:
        meter = self.meter
        if meter is None:
            return super()._do_get()
        # What QueuePool itself checks before it blocks: every connection it may open is
        # open and none is idle, so this checkout waits for another one's return.
        exhausted = self._max_overflow > -1 and self.overflow() >= self._max_overflow and not self.checkedin()
        started = time.perf_counter() if exhausted else 0.0
        try:
            record = super()._do_get()
        except exc.TimeoutError:
            meter.timeouts.inc()
            raise
        finally:
            if exhausted:
                meter.wait_seconds.observe(time.perf_counter() - started)
            meter.update(self)
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            if self.meter is not None:
                self.meter.update(self)

    def dispose(self) -> None:
        super().dispose()
        if self.meter is not None:
            # After a fork (gunicorn's post_fork disposes): the child's series start anew.
            self.meter.forget()
            self.meter.update(self)


def metered_pool_class(metrics: PoolMetrics, engine: str) -> type[MeteredQueuePool]:
    """A ``MeteredQueuePool`` subclass reporting as ``engine`` (``write`` or ``read``)."""
    # The series exist from the start (at 0), not only after the first checkout.
    return type("MeteredQueuePool", (MeteredQueuePool,), {"meter": _Meter(metrics, engine)})


def pool_options(url: URL, metrics: PoolMetrics | None, engine: str) -> dict[str, Any]:
    """``create_engine`` keywords that meter the engine's pool; none where the engine would
    not use a ``QueuePool`` (SQLite in memory) or there are no metrics to report to."""
    if metrics is None:
        return {}
    if engine == "read" and url.get_backend_name() != "postgresql":
        return {}  # make_read_engine hands back the write engine: no pool of its own
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return {}
    return {"poolclass": metered_pool_class(metrics, engine)}

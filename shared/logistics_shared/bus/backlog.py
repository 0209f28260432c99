"""The outbox's backlog, measured from the database on a timer of its own.

``logistics_outbox_backlog`` and ``logistics_outbox_oldest_unsent_age_seconds``
are facts about the ``outbox`` table, not about the broker: the worker reads
them every ``LOGISTICS_OUTBOX_METRICS_SECONDS`` whether or not its relay holds a
broker connection (or runs at all), so the backlog and stalled-outbox alerts
can fire during a broker outage, which is when they matter.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Engine

from ..db import aware
from ..logs import describe_error
from ..metrics import BusMetrics

log = logging.getLogger(__name__)


class OutboxGauges:
    """Sets the backlog gauges from one ``SELECT count(*), min(created_at)`` per interval."""

    def __init__(
        self, *, service: str, engine: Engine, outbox: Table, metrics: BusMetrics, interval: float
    ) -> None:
        self.service = service
        self.engine = engine
        self.interval = interval
        self.metrics = metrics
        self._statement = select(func.count(), func.min(outbox.c.created_at)).where(
            outbox.c.published_at.is_(None)
        )

    def measure(self) -> tuple[int, float]:
        """Read the table once and set both gauges; returns (backlog, oldest age in seconds)."""
        with self.engine.connect() as conn:
            count, oldest = conn.execute(self._statement).one()
        oldest = aware(oldest)
        age = max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0
        self.metrics.outbox_backlog.labels(self.service).set(count)
        self.metrics.outbox_oldest_age.labels(self.service).set(age)
        return count, age

    def run(self, stop: threading.Event) -> None:
        """Measure at once, then every ``interval`` seconds until ``stop`` is set.

        When the database does not answer, the gauges keep their last values (the
        database alerts say why) and the failure is logged, once per change of error.
        """
        last_error = ""
        while True:
            try:
                self.measure()
                last_error = ""
            except Exception as exc:  # noqa: BLE001 - keep measuring once the database is back
                error = describe_error(exc)
                if error != last_error:
                    log.warning("outbox backlog not measured: %s", error, extra={"service": self.service})
                last_error = error
            if stop.wait(self.interval):
                return

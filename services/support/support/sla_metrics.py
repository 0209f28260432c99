"""Support's SLA as gauges, measured from the database on a timer of the worker's.

``logistics_support_tickets_open{priority}``, ``logistics_support_sla_breached{priority}``
(open tickets past a target) and ``logistics_support_sla_breaching_soon{priority}`` (open,
not breached, in the last part of a target: ``LOGISTICS_SLA_BREACHING_SOON_FRACTION``, the
rule of :func:`support.domain.sla.soon_clause`, as the tickets' ``sla_state``) are facts about the
``tickets`` table, read the way the outbox backlog is read
(:mod:`logistics_shared.bus.backlog`): one ``SELECT ... GROUP BY priority`` every
``LOGISTICS_OUTBOX_METRICS_SECONDS`` in the worker, independent of the broker.

A ticket is breached here as soon as a due time has passed, not only once the sweep
(``LOGISTICS_SLA_SWEEP_SECONDS``) has marked it: the gauge must not lag the sweep by a
minute, and a stopped sweep must not hide breaches. The conditions are the sweep's own
(first response unanswered past due while new/open/pending; resolution past due while
new/open, the clock being paused while pending), plus any breach already marked on a
ticket still open. Every priority has a series, 0 when it has no tickets, so that
``absent()`` means "not measured" and nothing else.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Engine

from logistics_shared.logs import describe_error

from .domain.sla import OPEN_STATES, soon_clause
from .models import PRIORITIES, tickets

log = logging.getLogger(__name__)

SERVICE = "support"
#: Where the worker's registry keeps the measurer between runs of the periodic task.
REGISTRY_KEY = "support.sla_gauges"


class SlaMetrics:
    """The three gauges, in the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["service", "priority"]
        self.open = Gauge(
            "logistics_support_tickets_open",
            "Tickets new, open or pending, by priority (from the database).",
            labels,
            registry=registry,
        )
        self.breached = Gauge(
            "logistics_support_sla_breached",
            "Open tickets past their first-response or resolution target, by priority.",
            labels,
            registry=registry,
        )
        self.breaching_soon = Gauge(
            "logistics_support_sla_breaching_soon",
            "Open tickets not breached yet in the last part of a target (breaching soon), by priority.",
            labels,
            registry=registry,
        )


def _statement(now: datetime, soon_fraction: float) -> Any:
    t = tickets.c
    running = t.status.in_(("new", "open"))
    breached = or_(
        t.sla_first_response_breached_at.is_not(None),
        t.sla_resolution_breached_at.is_not(None),
        and_(t.first_responded_at.is_(None), t.first_response_due < now),
        and_(running, t.resolution_due < now),
    )
    soon = and_(running, soon_clause(now, soon_fraction))
    return (
        select(
            t.priority,
            func.count(),
            func.sum(case((breached, 1), else_=0)),
            # CASE, not NOT(breached): a NULL due time must not make "breached" unknown.
            func.sum(case((breached, 0), (soon, 1), else_=0)),
        )
        .where(t.status.in_(OPEN_STATES))
        .group_by(t.priority)
    )


class SlaGauges:
    """Sets the SLA gauges from one query per run; a failure is logged once per change."""

    def __init__(self, *, engine: Engine, metrics: SlaMetrics, soon_fraction: float) -> None:
        self.engine = engine
        self.metrics = metrics
        self.soon_fraction = soon_fraction
        self._last_error = ""

    def measure(self, now: datetime | None = None) -> dict[str, tuple[int, int, int]]:
        """Read the table once and set every priority's gauges: ``{priority: (open,
        breached, breaching soon)}``."""
        now = now or datetime.now(UTC)
        with self.engine.connect() as conn:
            rows = conn.execute(_statement(now, self.soon_fraction)).all()
        found = dict.fromkeys(PRIORITIES, (0, 0, 0))
        for priority, count, breached, soon in rows:
            found[priority] = (int(count), int(breached or 0), int(soon or 0))
        for priority, (count, breached, soon) in found.items():
            self.metrics.open.labels(SERVICE, priority).set(count)
            self.metrics.breached.labels(SERVICE, priority).set(breached)
            self.metrics.breaching_soon.labels(SERVICE, priority).set(soon)
        return found

    def run_once(self) -> None:
        """One measurement for the periodic task. When the database does not answer the
        gauges keep their last values (the database alerts say why), as the backlog's do."""
        try:
            self.measure()
            self._last_error = ""
        except Exception as exc:  # noqa: BLE001 - measure again next time
            error = describe_error(exc)
            if error != self._last_error:
                log.warning("SLA gauges not measured: %s", error, extra={"service": SERVICE})
            self._last_error = error


def gauges_for(registry: Any) -> SlaGauges:
    """The worker's measurer, made on first use: web processes never build the gauges."""
    found = registry.get(REGISTRY_KEY)
    if found is None:
        found = SlaGauges(
            engine=registry.get("dbengine_read") or registry["dbengine"],
            metrics=SlaMetrics(registry["logistics.metrics"].registry),
            soon_fraction=registry["logistics.settings"].own.sla_breaching_soon_fraction,
        )
        registry[REGISTRY_KEY] = found
    return found


def measure_sla(registry: Any) -> None:
    """The ``sla-metrics`` periodic task (see :mod:`support.service`)."""
    gauges_for(registry).run_once()

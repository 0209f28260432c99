"""The support service as the ``logistics`` CLI sees it (entry point)."""

from __future__ import annotations

from typing import Any

from logistics_shared.service import BackgroundTask, ServiceSpec, lazy

from .settings import SupportSettings


def _sweep_sla(registry: Any) -> None:
    from logistics_shared.outbox import Outbox

    from .domain.sla import sweep
    from .models import outbox

    with registry["dbsession_factory"]() as session, session.begin():
        sweep(session, Outbox(session, outbox, producer="support"))


SERVICE = ServiceSpec(
    settings=SupportSettings,
    name="support",
    port=6543,
    description="Tickets, comments, SLAs and a read model of shipments built from events.",
    migrations="support:migrations",
    configure=lazy("support:configure"),
    metadata=lazy("support.models:get_metadata"),
    role_permissions=lazy("support.permissions:role_permissions"),
    handlers=lazy("support.handlers:handlers"),
    demo=lazy("support.demo:load"),
    # Custom plans always. psycopg prepares a statement after five runs, and PostgreSQL may
    # then switch to a generic plan made without the parameter values; for ticket search
    # (ILIKE served by trigram indexes) that plan scanned everything once a common term had
    # been searched first: 500 -> 55 req/s (bench/tickets.py). Not for every service: the
    # stock read, whose plan never depends on its values, lost ~6% to planning each time.
    pg_settings=("plan_cache_mode=force_custom_plan",),
    background=(
        # Breaches are found by the worker, not by a request; once a minute (the default) is
        # plenty for targets counted in hours.
        BackgroundTask(
            name="sla-breaches", run=_sweep_sla, interval=lambda settings: settings.own.sla_sweep_seconds
        ),
        # The SLA gauges (support.sla_metrics), read from the database as often as the outbox
        # backlog is: a scrape sees breaches within seconds, whether or not the sweep ran.
        BackgroundTask(
            name="sla-metrics",
            run=lazy("support.sla_metrics:measure_sla"),
            interval=lambda settings: settings.outbox_metrics_seconds,
        ),
    ),
)

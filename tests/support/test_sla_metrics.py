"""Support's SLA gauges on the worker's /metrics, measured from a real PostgreSQL.

Tickets are made through the API, their targets moved into the past or the future with
SQL (waiting hours for a due time is not a test); the worker's ``sla-metrics`` task reads
the table every 0.2 s, and /metrics follows every change: a target passing, an answer,
a ticket solved, a ticket pending.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from logistics_shared.bus.worker import Worker
from support.models import PRIORITIES
from support.sla_metrics import REGISTRY_KEY

from ..helpers.bus import wait_until
from ..helpers.metrics import sample, scrape_app

pytestmark = [pytest.mark.postgres]

TICKET = {
    "subject": "Where is my parcel?",
    "description": "Order 42",
    "type": "question",
    "queue": "customers",
}
NAMES = {
    "open": "logistics_support_tickets_open",
    "breached": "logistics_support_sla_breached",
    "soon": "logistics_support_sla_breaching_soon",
}


def set_due(client: Any, ticket_id: str, **dues: timedelta) -> None:
    now = datetime.now(UTC)
    with client.engine.begin() as conn:
        for column, offset in dues.items():
            assert column in ("first_response_due", "resolution_due", "created_at")
            conn.execute(
                text(f"UPDATE tickets SET {column} = :due WHERE id = :id"),
                {"due": now + offset, "id": ticket_id},
            )


def test_the_gauges_follow_the_tickets_table(service_client: Any) -> None:
    support = service_client("support", "postgres", outbox_metrics_seconds=0.2)
    agent = support.as_("support_agent")

    def create(priority: str, subject: str) -> str:
        return str(
            agent.post_json("/v1/tickets", {**TICKET, "priority": priority, "subject": subject}).json["id"]
        )

    urgent = create("urgent", "first response due in 10 minutes")
    # Opened 50 minutes ago: its hour to the first answer is in its last quarter -> soon.
    set_due(support, urgent, created_at=timedelta(minutes=-50), first_response_due=timedelta(minutes=10))
    low = create("low", "a week to go")
    late = create("high", "nobody answered")
    set_due(support, late, first_response_due=timedelta(minutes=-5))
    waiting = create("normal", "waiting for the customer")
    set_due(support, waiting, first_response_due=timedelta(hours=5), resolution_due=timedelta(minutes=-5))
    agent.post_json(f"/v1/tickets/{waiting}/comments", {"body": "Which order?", "visibility": "public"})
    agent.patch_json(f"/v1/tickets/{waiting}", {"status": "open"})
    agent.patch_json(f"/v1/tickets/{waiting}", {"status": "pending"})  # the resolution clock stops
    done = create("high", "solved late")
    set_due(support, done, first_response_due=timedelta(minutes=-5))
    agent.patch_json(f"/v1/tickets/{done}", {"status": "open"})
    agent.patch_json(f"/v1/tickets/{done}", {"status": "solved"})

    worker = Worker(
        support.registry["logistics.service"], support.settings, support.registry, relay=False, consumers=0
    )
    health = worker.health_app()

    def gauges() -> dict[str, dict[str, float | None]]:
        scraped = scrape_app(health)
        return {
            kind: {p: sample(scraped, name, service="support", priority=p) for p in PRIORITIES}
            for kind, name in NAMES.items()
        }

    def expect(what: str, **wanted: dict[str, int]) -> None:
        def matches() -> bool:
            seen = gauges()
            return all(
                seen[kind] == {p: values.get(p, 0) for p in PRIORITIES} for kind, values in wanted.items()
            )

        try:
            wait_until(matches, timeout=15, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; /metrics says {gauges()}") from None

    assert gauges()["open"] == dict.fromkeys(PRIORITIES), "no series before the worker measured"
    worker.start()
    try:
        expect(
            "the first measurement",
            open={"urgent": 1, "low": 1, "high": 1, "normal": 1},  # the solved one is not open
            breached={"high": 1},  # past due, before any sweep marked it
            soon={"urgent": 1},  # the pending one is paused: neither breached nor soon
        )
        set_due(support, low, resolution_due=timedelta(seconds=-1))
        set_due(support, urgent, first_response_due=timedelta(hours=3), resolution_due=timedelta(hours=4))
        expect(
            "a low ticket past its resolution target, the urgent one given more time",
            breached={"high": 1, "low": 1},
            soon={},
        )
        agent.patch_json(f"/v1/tickets/{late}", {"status": "open"})
        agent.patch_json(f"/v1/tickets/{late}", {"status": "solved"})
        agent.patch_json(f"/v1/tickets/{waiting}", {"status": "open"})  # its clock runs again, past due
        expect(
            "the late one solved, the pending one open again",
            open={"urgent": 1, "low": 1, "normal": 1},
            breached={"low": 1, "normal": 1},
        )
    finally:
        worker.shutdown()

    # The measurement itself, at a chosen time: in two hours the urgent ticket is due soon.
    measured = support.registry[REGISTRY_KEY].measure(datetime.now(UTC) + timedelta(hours=2, minutes=30))
    assert measured["urgent"] == (1, 0, 1)
    assert measured["low"] == (1, 1, 0)

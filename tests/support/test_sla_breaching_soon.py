""" "Breaching soon" is the last part of a target (LOGISTICS_SLA_BREACHING_SOON_FRACTION of
it, 0.25 by default), not a fixed hour: a new urgent ticket (first response due in an
hour) is ``ok`` when it is opened.

One table across priorities, targets, the time gone and the time spent pending, checked
the three ways the notion is read: the ticket's ``sla_state``, the list filter
``?sla=breaching_soon`` (and ``?sla=ok``), and the worker's gauge
``logistics_support_sla_breaching_soon`` — on SQLite and PostgreSQL. The tickets are
opened through the API; their clocks are then set back with SQL as the domain would
have set them had they been opened ``elapsed`` ago (the due times from the policy, the
resolution due time moved by the time spent pending): waiting hours is not a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from logistics_shared.settings import SettingsError, load_settings
from support.settings import SupportSettings
from support.sla_metrics import SlaGauges, SlaMetrics

H, M = timedelta(hours=1), timedelta(minutes=1)
#: The default policies (migration 0005): first response, resolution.
TARGETS = {
    "urgent": (1 * H, 4 * H),
    "high": (4 * H, 24 * H),
    "normal": (8 * H, 72 * H),
    "low": (24 * H, 168 * H),
}


@dataclass(frozen=True)
class Row:
    label: str
    priority: str
    elapsed: timedelta  # wall time since the ticket was opened
    expected: str
    answered: bool = False  # the first public answer was given
    paused: timedelta = timedelta(0)  # time spent pending earlier (not counted)
    status: str = "open"
    fraction: float = 0.25
    past_due: bool = False


ROWS = [
    Row("a new urgent ticket", "urgent", 0 * M, "ok", status="new"),
    Row("urgent, 44 of 60 min to the first answer", "urgent", 44 * M, "ok"),
    Row("urgent, 46 of 60 min to the first answer", "urgent", 46 * M, "breaching_soon"),
    Row("urgent, answered, 46 min in", "urgent", 46 * M, "ok", answered=True),
    Row("urgent, answered, 2 h 59 of 4 h", "urgent", 2 * H + 59 * M, "ok", answered=True),
    Row("urgent, answered, 3 h 01 of 4 h", "urgent", 3 * H + 1 * M, "breaching_soon", answered=True),
    # Past due but not marked by the sweep yet: breaching soon for the ticket and the list
    # (as before), already breached for the gauge (support/sla_metrics.py).
    Row("urgent, past its first response, unswept", "urgent", 61 * M, "breaching_soon", past_due=True),
    Row("high, 2 h 59 of 4 h", "high", 2 * H + 59 * M, "ok"),
    Row("high, 3 h 01 of 4 h", "high", 3 * H + 1 * M, "breaching_soon"),
    Row("high, answered, 17 h of 24 h", "high", 17 * H, "ok", answered=True),
    Row("high, answered, 19 h of 24 h", "high", 19 * H, "breaching_soon", answered=True),
    Row("normal, answered, 53 h of 72 h", "normal", 53 * H, "ok", answered=True),
    Row("normal, answered, 55 h of 72 h", "normal", 55 * H, "breaching_soon", answered=True),
    Row("normal, answered, 55 h of which 4 pending", "normal", 55 * H, "ok", answered=True, paused=4 * H),
    Row(
        "normal, answered, 58 h of which 2 pending",
        "normal",
        58 * H,
        "breaching_soon",
        answered=True,
        paused=2 * H,
    ),
    Row("normal, pending now", "normal", 71 * H, "paused", answered=True, status="pending"),
    Row("low, answered, 5 days of 7", "low", 120 * H, "ok", answered=True),
    Row("low, answered, 6 days of 7", "low", 144 * H, "breaching_soon", answered=True),
    Row(
        "low, answered, 4 days of 7, half the target",
        "low",
        96 * H,
        "breaching_soon",
        answered=True,
        fraction=0.5,
    ),
    Row("low, answered, 3 days of 7, half the target", "low", 72 * H, "ok", answered=True, fraction=0.5),
    Row("urgent, 30 of 60 min, the last 60%", "urgent", 30 * M, "breaching_soon", fraction=0.6),
    Row("urgent, 20 of 60 min, the last 60%", "urgent", 20 * M, "ok", fraction=0.6),
    Row("normal, solved", "normal", 60 * H, "met", answered=True, status="solved"),
]


def _open(client: Any, row: Row, now: datetime) -> str:
    agent = client.as_("support_agent")
    ticket = agent.post_json(
        "/v1/tickets",
        {"subject": row.label, "description": "-", "type": "question", "priority": row.priority},
    ).json
    first_target, resolution_target = TARGETS[row.priority]
    created = now - row.elapsed
    with client.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE tickets SET created_at = :created, status = :status, first_response_due = :first,"
                " resolution_due = :resolution, first_responded_at = :answered,"
                " sla_paused_seconds = :paused, sla_paused_at = :paused_at WHERE id = :id"
            ),
            {
                "id": ticket["id"],
                "created": created,
                "status": row.status,
                "first": created + first_target,
                "resolution": created + resolution_target + row.paused,
                "answered": created + M if row.answered else None,
                "paused": row.paused.total_seconds(),
                "paused_at": now - M if row.status == "pending" else None,
            },
        )
    return str(ticket["id"])


def _listed(client: Any, sla_state: str) -> set[str]:
    page = client.as_("support_agent").get("/v1/tickets", {"sla": sla_state, "limit": 200}).json
    assert page["next_cursor"] is None
    return {t["id"] for t in page["items"]}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_breaching_soon_is_the_last_fraction_of_each_target(service_client, backend):
    now = datetime.now(UTC)
    for fraction in sorted({row.fraction for row in ROWS}):
        rows = [row for row in ROWS if row.fraction == fraction]
        client = service_client("support", backend, sla_breaching_soon_fraction=fraction)
        ids = {row.label: _open(client, row, now) for row in rows}
        agent = client.as_("support_agent")
        states = {row.label: agent.get(f"/v1/tickets/{ids[row.label]}").json["sla_state"] for row in rows}
        assert states == {row.label: row.expected for row in rows}, f"fraction {fraction}"
        # The list filters follow the same rule (the rows above were read a moment ago:
        # no row is within seconds of its threshold).
        for state in ("breaching_soon", "ok"):
            wanted = {ids[row.label] for row in rows if row.expected == state}
            assert _listed(client, state) == wanted, f"?sla={state}, fraction {fraction}"
        # ... and so does the gauge, per priority.
        gauges = SlaGauges(
            engine=client.engine, metrics=SlaMetrics(CollectorRegistry()), soon_fraction=fraction
        )
        measured = gauges.measure(datetime.now(UTC))
        soon = {
            p: sum(1 for r in rows if r.priority == p and r.expected == "breaching_soon" and not r.past_due)
            for p in TARGETS
        }
        assert {p: counts[2] for p, counts in measured.items()} == soon, f"gauge, fraction {fraction}"


def test_a_new_urgent_ticket_is_not_breaching_soon_the_moment_it_is_opened(service_client):
    agent = service_client("support").as_("support_agent")
    ticket = agent.post_json(
        "/v1/tickets",
        {"subject": "Lost parcel", "description": "-", "type": "incident", "priority": "urgent"},
    ).json
    assert ticket["sla_state"] == "ok"
    assert agent.get(f"/v1/tickets/{ticket['id']}").json["sla_state"] == "ok"
    assert [t["id"] for t in agent.get("/v1/tickets", {"sla": "ok"}).json["items"]] == [ticket["id"]]
    assert agent.get("/v1/tickets", {"sla": "breaching_soon"}).json["items"] == []


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.25", "0.0", "nan", "inf"])
def test_the_fraction_must_be_between_0_and_1(value):
    with pytest.raises(SettingsError) as raised:
        load_settings("support", {}, {"LOGISTICS_SLA_BREACHING_SOON_FRACTION": value}, own=SupportSettings)
    message = str(raised.value)
    assert "LOGISTICS_SLA_BREACHING_SOON_FRACTION" in message
    assert "between 0 and 1" in message


def test_the_fraction_defaults_to_the_last_quarter():
    settings = load_settings("support", {}, {}, own=SupportSettings)
    assert settings.own.sla_breaching_soon_fraction == 0.25
    chosen = load_settings("support", {"sla_breaching_soon_fraction": "0.1"}, {}, own=SupportSettings)
    assert chosen.own.sla_breaching_soon_fraction == 0.1

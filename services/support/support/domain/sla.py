"""SLA policies per priority: first-response and resolution targets.

Policies live in the ``sla_policies`` table (seeded by migration 0005, edited
by admins). Due times are set from them when a ticket is created (and again
when its priority changes); a policy change therefore applies to tickets
opened or re-prioritised afterwards, while open tickets keep the due times
they were promised. The resolution clock stops while the ticket is
``pending`` (waiting for the customer) and the due time moves by the time
spent there. The worker's sweep marks a breach once per ticket and kind and
emits ``ticket.sla_breached``.

"Breaching soon" is relative to the target: a clock is breaching soon in the last
``soon_fraction`` of its target (the setting ``sla_breaching_soon_fraction``, 0.25 by
default: the last quarter), so an urgent ticket with an hour to its first answer is
``ok`` when it is opened and breaching soon 45 minutes later, and a low one with a week
to its resolution is breaching soon for its last 42 hours. The target is read off the
ticket, not the policy (which may have changed since): the time from its opening to its
due time, less the time it spent pending, which moved the resolution due time and is
not counted (:func:`soon_at`). :func:`state`, the list filter (:func:`filter_for`) and
the gauges (``support.sla_metrics``) all use this one rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from logistics_shared.db import aware, epoch_seconds
from logistics_shared.errors import Conflict, NotFound, PreconditionFailed
from logistics_shared.outbox import Outbox

from ..models import PRIORITIES, sla_policies, tickets

#: "Breaching soon" by default: the last quarter of a target.
DEFAULT_SOON_FRACTION = 0.25
OPEN_STATES = ("new", "open", "pending")


def _policy(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def policies(session: Session) -> list[dict[str, Any]]:
    """Every priority's policy, most urgent first."""
    rows = {row.priority: _policy(row) for row in session.execute(select(sla_policies))}
    return [rows[p] for p in reversed(PRIORITIES) if p in rows]


def policy(session: Session, priority: str) -> dict[str, Any]:
    row = session.execute(select(sla_policies).where(sla_policies.c.priority == priority)).first()
    if row is None:
        raise NotFound(f"No SLA policy for priority {priority!r}; priorities are {', '.join(PRIORITIES)}.")
    return _policy(row)


def set_policy(
    session: Session,
    priority: str,
    first_response_minutes: int,
    resolution_minutes: int,
    actor: str,
    expected_version: int | None,
) -> dict[str, Any]:
    """Replace one priority's targets with a conditional UPDATE on its version."""
    current = policy(session, priority)
    if expected_version is not None and expected_version != current["version"]:
        raise PreconditionFailed.stale("SLA policy", current["version"], expected_version)
    targets = {"first_response_minutes": first_response_minutes, "resolution_minutes": resolution_minutes}
    if all(current[k] == v for k, v in targets.items()):
        return current
    row = session.execute(
        update(sla_policies)
        .where(sla_policies.c.priority == priority, sla_policies.c.version == current["version"])
        .values(version=sla_policies.c.version + 1, updated_by=actor, updated_at=datetime.now(UTC), **targets)
        .returning(*sla_policies.c)
    ).first()
    if row is None:
        if expected_version is not None:
            current = policy(session, priority)
            raise PreconditionFailed.stale("SLA policy", current["version"], expected_version)
        raise Conflict("The policy changed while this request ran; fetch it and try again.")
    return _policy(row)


def due_times(session: Session, priority: str, since: datetime) -> dict[str, datetime]:
    targets = policy(session, priority)
    return {
        "first_response_due": since + timedelta(minutes=targets["first_response_minutes"]),
        "resolution_due": since + timedelta(minutes=targets["resolution_minutes"]),
    }


def on_change(
    session: Session, ticket: dict[str, Any], values: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Extra column values an update implies for the SLA clocks."""
    extra: dict[str, Any] = {}
    paused_before = timedelta(seconds=ticket.get("sla_paused_seconds") or 0)
    if "priority" in values:
        extra.update(due_times(session, values["priority"], aware(ticket["created_at"])))
        extra["resolution_due"] += paused_before  # the credit for waiting on the customer stays
    target = values.get("status")
    if target == "pending" and ticket["status"] != "pending":
        extra["sla_paused_at"] = now
    elif ticket["status"] == "pending" and target not in (None, "pending"):
        paused = now - aware(ticket["sla_paused_at"]) if ticket.get("sla_paused_at") else timedelta(0)
        base = extra.get("resolution_due") or aware(ticket["resolution_due"])
        if base is not None:
            extra["resolution_due"] = base + paused
        extra["sla_paused_at"] = None
        extra["sla_paused_seconds"] = (paused_before + paused).total_seconds()
    return extra


def soon_at(due: datetime, started: datetime, soon_fraction: float) -> datetime:
    """When a clock running from ``started`` (the opening, plus the time spent pending
    for the resolution clock) to ``due`` starts breaching soon: ``soon_fraction`` of
    its target before it is due."""
    return due - (due - started) * soon_fraction


def _clocks(ticket: dict[str, Any]) -> list[tuple[datetime | None, datetime]]:
    """The running clocks: (due time, start without the time spent pending)."""
    opened = aware(ticket["created_at"])
    paused = timedelta(seconds=ticket.get("sla_paused_seconds") or 0)
    clocks: list[tuple[datetime | None, datetime]] = [(aware(ticket.get("resolution_due")), opened + paused)]
    if ticket.get("first_responded_at") is None:
        clocks.append((aware(ticket.get("first_response_due")), opened))
    return clocks


def state(ticket: dict[str, Any], now: datetime, soon_fraction: float) -> str:
    """``met``, ``breached``, ``paused``, ``breaching_soon`` or ``ok``."""
    if ticket.get("sla_first_response_breached_at") or ticket.get("sla_resolution_breached_at"):
        return "breached"
    if ticket["status"] in ("solved", "closed"):
        return "met"
    if ticket["status"] == "pending":
        return "paused"
    if any(due is not None and soon_at(due, start, soon_fraction) <= now for due, start in _clocks(ticket)):
        return "breaching_soon"
    return "ok"


def soon_clause(now: datetime, soon_fraction: float) -> Any:
    """SQL true for a ticket with a running clock past its :func:`soon_at` (or due),
    whatever its status: ``soon_at <= now`` in seconds since the epoch,
    ``(1 - f) * due + f * start <= now``."""
    t, f, at = tickets.c, soon_fraction, now.timestamp()
    resolution_start = epoch_seconds(t.created_at) + t.sla_paused_seconds
    return or_(
        (1 - f) * epoch_seconds(t.resolution_due) + f * resolution_start <= at,
        and_(
            t.first_responded_at.is_(None),
            (1 - f) * epoch_seconds(t.first_response_due) + f * epoch_seconds(t.created_at) <= at,
        ),
    )


def filter_for(sla_state: str, now: datetime, soon_fraction: float) -> Any:
    """A WHERE clause selecting tickets in ``sla_state`` (list filter)."""
    breached = or_(
        tickets.c.sla_first_response_breached_at.is_not(None),
        tickets.c.sla_resolution_breached_at.is_not(None),
    )
    running = tickets.c.status.in_(("new", "open"))
    if sla_state == "breached":
        return breached
    if sla_state == "paused":
        return and_(~breached, tickets.c.status == "pending")
    soon = soon_clause(now, soon_fraction)
    if sla_state == "breaching_soon":
        return and_(~breached, running, soon)
    return and_(~breached, running, ~soon)  # "ok"


def sweep(session: Session, outbox: Outbox, now: datetime | None = None) -> int:
    """Mark and announce new breaches; each (ticket, kind) once."""
    now = now or datetime.now(UTC)
    found = 0
    kinds = (
        (
            "first_response",
            tickets.c.sla_first_response_breached_at,
            and_(
                tickets.c.first_responded_at.is_(None),
                tickets.c.first_response_due < now,
                tickets.c.status.in_(OPEN_STATES),
            ),
        ),
        (
            "resolution",
            tickets.c.sla_resolution_breached_at,
            and_(tickets.c.resolution_due < now, tickets.c.status.in_(("new", "open"))),
        ),
    )
    for kind, mark, due in kinds:
        rows = session.execute(
            update(tickets)
            .where(mark.is_(None), due)
            .values(**{mark.name: now})
            .returning(tickets.c.id, tickets.c.number, tickets.c.priority, tickets.c.assignee)
        ).all()
        for row in rows:
            outbox.emit(
                "ticket.sla_breached",
                {
                    "ticket_id": row.id,
                    "number": row.number,
                    "kind": kind,
                    "priority": row.priority,
                    "assignee": row.assignee,
                    "breached_at": now.isoformat(),
                },
            )
        found += len(rows)
    return found


def first_response(session: Session, ticket_id: str, now: datetime) -> None:
    session.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id, tickets.c.first_responded_at.is_(None))
        .values(first_responded_at=now)
    )

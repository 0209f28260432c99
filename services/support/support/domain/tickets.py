"""Tickets and their comments."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, select, union, update
from sqlalchemy.orm import Session

from logistics_shared.errors import Conflict, NotFound, PreconditionFailed
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox
from logistics_shared.readpath import prebuilt
from logistics_shared.sorting import Sort

from ..models import COMMENT_SORTS, TICKET_SORTS, shipment_view, ticket_comments, tickets
from . import lifecycle, sla

FIELDS = (
    "subject",
    "description",
    "type",
    "priority",
    "queue",
    "tags",
    "assignee",
    "shipment_id",
    "order_reference",
    "tracking_number",
)


def _tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))  # de-duplicated, order kept


def _row(row: Any, soon_fraction: float | None, now: datetime | None = None) -> dict[str, Any]:
    """A ticket as the API shows it; without ``sla_state`` when no ``soon_fraction`` is
    given (the setting ``sla_breaching_soon_fraction``: an event handler shows nothing)."""
    data = _row_fields(row)
    if soon_fraction is not None:
        data["sla_state"] = sla.state(data, now or datetime.now(UTC), soon_fraction)
    return data


def _row_fields(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["tags"] = orjson.loads(data["tags"])
    return data


def create(
    session: Session,
    outbox: Outbox,
    created_by: str,
    data: dict[str, Any],
    ticket_id: str | None = None,
    soon_fraction: float | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    values = {
        "id": ticket_id or str(uuid.uuid4()),
        "status": "new",
        "version": 1,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
        "assignee": None,
        "shipment_id": None,
        "order_reference": None,
        "tracking_number": None,
        **{k: data[k] for k in FIELDS if k in data},
    }
    values["tags"] = orjson.dumps(_tags(values.get("tags") or [])).decode()
    values.update(sla.due_times(session, values["priority"], now))
    if values["shipment_id"] is not None:
        values["shipment_id"] = str(values["shipment_id"])
    # The stored row comes back from the INSERT itself (the number, the defaults):
    # no SELECT of it afterwards.
    ticket = _row(
        session.execute(tickets.insert().values(**values).returning(*tickets.c)).one(), soon_fraction
    )
    number = ticket["number"]
    outbox.emit(
        "ticket.created",
        {
            "ticket_id": ticket["id"],
            "number": number,
            "subject": ticket["subject"],
            "type": ticket["type"],
            "priority": ticket["priority"],
            "status": ticket["status"],
            "queue": ticket["queue"],
            "assignee": ticket["assignee"],
            "shipment_id": ticket["shipment_id"],
        },
    )
    return ticket


def _visible_to(actor: Identity) -> Any:
    """Warehouse staff see only tickets linked to their warehouses' shipments."""
    if actor.all_warehouses:
        return None
    theirs = select(shipment_view.c.shipment_id).where(
        shipment_view.c.warehouse.in_(sorted(actor.warehouses))
    )
    return tickets.c.shipment_id.in_(theirs)


def load(
    session: Session, ticket_id: str, actor: Identity | None = None, soon_fraction: float | None = None
) -> dict[str, Any]:
    try:
        uuid.UUID(ticket_id)
    except ValueError:
        raise NotFound(f"No ticket {ticket_id!r}.") from None
    stmt = select(tickets).where(tickets.c.id == ticket_id)
    scope = _visible_to(actor) if actor is not None else None
    if scope is not None:
        stmt = stmt.where(scope)
    row = session.execute(stmt).first()
    if row is None:
        raise NotFound(f"No ticket {ticket_id!r}.")
    return _row(row, soon_fraction)


#: Equality filters of the list, each a column of the same name.
EQUALITY_FILTERS = ("status", "priority", "assignee", "queue", "shipment_id")


@functools.cache
def _list_query(filtered: tuple[str, ...], scoped: bool, after: bool, sort: Sort) -> Any:
    """The listing for one combination of filters and sort, built once with bound parameters
    (as the stock listing): building the select cost a fifth of a page's CPU."""
    key, ident = tickets.c[sort.name], tickets.c.id
    stmt = select(tickets).where(*(tickets.c[name] == bindparam(name) for name in filtered))
    if scoped:
        theirs = select(shipment_view.c.shipment_id).where(
            shipment_view.c.warehouse.in_(bindparam("scope", expanding=True))
        )
        stmt = stmt.where(tickets.c.shipment_id.in_(theirs))
    if after:
        stmt = stmt.where(sort.after(key, ident))
    return prebuilt(stmt.order_by(*sort.order_by(key, ident)).limit(bindparam("limit")))


def list_(
    session: Session,
    actor: Identity,
    *,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
    soon_fraction: float,
    sort: Sort | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    sort = TICKET_SORTS.of(sort)
    if filters.get("q") or filters.get("sla"):
        stmt = _filtered_list(actor, filters, cursor, limit, soon_fraction, sort)
        params: dict[str, Any] = {}
    else:
        filtered = tuple(name for name in EQUALITY_FILTERS if filters.get(name) is not None)
        params = {name: str(filters[name]) for name in filtered}
        params["limit"] = limit + 1
        if not actor.all_warehouses:
            params["scope"] = sorted(actor.warehouses)
        if cursor:
            params.update(sort.params(cursor))
        stmt = _list_query(filtered, not actor.all_warehouses, bool(cursor), sort)
    now = datetime.now(UTC)
    return sort.page(
        [_row(r, soon_fraction, now) for r in session.execute(stmt, params)],
        limit,
        lambda r: (r[sort.name], r["id"]),
    )


def _filtered_list(
    actor: Identity,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
    soon_fraction: float,
    sort: Sort,
) -> Any:
    """A listing with a search term or an SLA state, whose clauses depend on their values."""
    conditions = []
    for name in EQUALITY_FILTERS:
        if filters.get(name) is not None:
            conditions.append(tickets.c[name] == str(filters[name]))
    if filters.get("sla"):
        conditions.append(sla.filter_for(filters["sla"], datetime.now(UTC), soon_fraction))
    scope = _visible_to(actor)
    if scope is not None:
        conditions.append(scope)
    key, ident = tickets.c[sort.name], tickets.c.id
    if cursor:
        conditions.append(sort.after(key, ident, sort.decode(cursor)))
    if filters.get("q"):
        # Staff must not find a ticket by words of an internal note they may not read.
        return _search(filters["q"], conditions, limit + 1, actor.all_warehouses, sort)
    return select(tickets).where(*conditions).order_by(*sort.order_by(key, ident)).limit(limit + 1)


def _search(q: str, conditions: list[Any], limit: int, internal_too: bool, sort: Sort) -> Any:
    """Tickets whose subject or any comment contains ``q`` (case-insensitive, ``%``/``_`` literal).

    Two ordered, limited branches joined by UNION rather than one ``subject ILIKE .. OR id IN
    (comments ..)``: the planner can serve each branch from its trigram index when ``q`` is
    rare, or walk the created-at index and stop early when it is common; an OR across the
    two tables allows neither, and scanned every ticket for a term that matches nothing.
    """
    order = (tickets.c[sort.name], tickets.c.id)
    in_comments = select(ticket_comments.c.ticket_id).where(
        ticket_comments.c.body.icontains(q, autoescape=True)
    )
    if not internal_too:
        in_comments = in_comments.where(ticket_comments.c.visibility == "public")
    # The branches carry only the keys: proxying all ticket columns through two subqueries
    # and a UNION cost more (in SQLAlchemy) than the query itself.
    branches = [
        select(*order).where(*conditions, match).order_by(*sort.order_by(*order)).limit(limit).subquery()
        for match in (tickets.c.subject.icontains(q, autoescape=True), tickets.c.id.in_(in_comments))
    ]
    found = union(*(select(branch) for branch in branches)).subquery()
    return (
        select(tickets)
        .join(found, tickets.c.id == found.c.id)
        .order_by(*sort.order_by(found.c[sort.name], found.c.id))
        .limit(limit)
    )


def change(
    session: Session,
    outbox: Outbox,
    ticket_id: str,
    changes: dict[str, Any],
    expected_version: int | None,
    soon_fraction: float | None = None,
) -> dict[str, Any]:
    """Apply ``changes`` (status through the lifecycle) in one conditional UPDATE.

    The UPDATE is guarded by the version read here (or the one ``If-Match``
    named), so the lifecycle check and the write cannot be split by another writer.
    """
    ticket = load(session, ticket_id, soon_fraction=soon_fraction)
    if expected_version is not None and expected_version != ticket["version"]:
        raise PreconditionFailed.stale("ticket", ticket["version"], expected_version)
    if ticket["status"] == "closed":
        raise Conflict("A closed ticket cannot be changed.", current_status="closed")
    target = changes.get("status")
    if target is not None and target != ticket["status"]:
        lifecycle.check(ticket["status"], target)
    values = {k: v for k, v in changes.items() if v != ticket.get(k)}
    if "tags" in values:
        values["tags"] = orjson.dumps(_tags(values["tags"])).decode()
    if not values:
        return ticket
    now = datetime.now(UTC)
    clocks = sla.on_change(session, ticket, values, now)
    row = session.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id, tickets.c.version == ticket["version"])
        .values(version=tickets.c.version + 1, updated_at=now, **values, **clocks)
        .returning(*tickets.c)
    ).first()
    if row is None:
        current = load(session, ticket_id)
        if expected_version is not None:
            raise PreconditionFailed.stale("ticket", current["version"], expected_version)
        raise Conflict("The ticket changed while this request ran; fetch it and try again.")
    updated = _row(row, soon_fraction)
    ref = {"ticket_id": ticket_id, "number": updated["number"]}
    if "status" in values:
        outbox.emit(
            "ticket.status_changed", {**ref, "previous_status": ticket["status"], "status": updated["status"]}
        )
    if "assignee" in values:
        outbox.emit(
            "ticket.assigned",
            {**ref, "previous_assignee": ticket["assignee"], "assignee": updated["assignee"]},
        )
    return updated


# -- comments ----------------------------------------------------------------------------
def add_comment(session: Session, ticket_id: str, author: str, body: str, visibility: str) -> dict[str, Any]:
    ticket = load(session, ticket_id)
    if ticket["status"] == "closed":
        raise Conflict("A closed ticket takes no more comments.", current_status="closed")
    now = datetime.now(UTC)
    comment: dict[str, Any] = {
        "ticket_id": ticket_id,
        "body": body,
        "visibility": visibility,
        "author": author,
        "created_at": now,
    }
    comment_id = session.execute(
        ticket_comments.insert().values(**comment).returning(ticket_comments.c.id)
    ).scalar_one()
    if visibility == "public":
        # The first public answer stops the first-response clock.
        sla.first_response(session, ticket_id, now)
    return {"id": comment_id, **comment}


def comments(
    session: Session,
    ticket_id: str,
    actor: Identity,
    *,
    visibility: str | None,
    cursor: str | None,
    limit: int,
    sort: Sort | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    sort = COMMENT_SORTS.of(sort)
    created, ident = ticket_comments.c.created_at, ticket_comments.c.id
    load(session, ticket_id, actor)  # 404 if unknown or not theirs
    if not actor.all_warehouses:
        visibility = "public"  # internal notes are the support team's
    stmt = (
        select(ticket_comments)
        .where(ticket_comments.c.ticket_id == ticket_id)
        .order_by(*sort.order_by(created, ident))
        .limit(limit + 1)
    )
    if visibility:
        stmt = stmt.where(ticket_comments.c.visibility == visibility)
    if cursor:
        stmt = stmt.where(sort.after(created, ident, sort.decode(cursor)))
    rows = [dict(r._mapping) for r in session.execute(stmt)]
    return sort.page(rows, limit, lambda r: (r["created_at"], r["id"]))


def linked_to_shipment(session: Session, shipment_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in session.execute(
            select(tickets.c.id, tickets.c.number, tickets.c.status)
            .where(tickets.c.shipment_id == shipment_id)
            .order_by(tickets.c.number)
        )
    ]

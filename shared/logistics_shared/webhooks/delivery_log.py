"""An endpoint's delivery log and redelivery (the endpoint found as its manager sees it).

Redelivering puts a delivery back to ``pending``, due now: the dispatcher sends it
again with the same ``webhook-id`` (receivers de-duplicate by it) and appends attempts,
whose count keeps growing, so the log shows every try.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound
from ..identity import Identity
from ..sorting import Sort
from .domain import Db, Subscriptions, delivery_out, is_uuid
from .tables import DELIVERY_SORTS

#: What a redelivery resets: due now, nobody's claim, not finished.
_AGAIN = {"claim": None, "claimed_until": None, "finished_at": None}


@dataclass
class DeliveryLog:
    subscriptions: Subscriptions

    def list_(
        self,
        db: Db,
        actor: Identity,
        endpoint_id: str,
        *,
        filters: dict[str, Any],
        cursor: str | None,
        limit: int,
        sort: Sort | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """An endpoint's deliveries, newest first (or as ``sort`` says), filtered by status,
        event type and when they were created (``since`` included, ``until`` excluded)."""
        endpoint = self.subscriptions.managed_row(db, endpoint_id, actor)
        d = self.subscriptions.tables.deliveries
        stmt = select(d).where(d.c.endpoint_id == endpoint.id)
        for name in ("status", "event_type"):
            if filters.get(name):
                stmt = stmt.where(d.c[name] == filters[name])
        if filters.get("since"):
            stmt = stmt.where(d.c.created_at >= filters["since"])
        if filters.get("until"):
            stmt = stmt.where(d.c.created_at < filters["until"])
        sort = DELIVERY_SORTS.of(sort)
        if cursor:
            stmt = stmt.where(sort.after(d.c.created_at, d.c.id, sort.decode(cursor)))
        rows = db.execute(stmt.order_by(*sort.order_by(d.c.created_at, d.c.id)).limit(limit + 1)).all()
        return sort.page([delivery_out(r) for r in rows], limit, lambda r: (r["created_at"], r["id"]))

    def load(self, db: Db, actor: Identity, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        """A delivery with the payload it sends and every attempt, oldest first."""
        endpoint = self.subscriptions.managed_row(db, endpoint_id, actor)
        tables = self.subscriptions.tables
        d, m, a = tables.deliveries, tables.messages, tables.attempts
        row = None
        if is_uuid(delivery_id):
            row = db.execute(
                select(d, m.c.payload)
                .join(m, m.c.id == d.c.message_id)
                .where(d.c.id == delivery_id, d.c.endpoint_id == endpoint.id)
            ).first()
        if row is None:
            raise NotFound(f"No delivery {delivery_id!r} of this endpoint.")
        data = delivery_out(row)
        data["payload"] = orjson.loads(data["payload"])
        attempts = db.execute(select(a).where(a.c.delivery_id == row.id).order_by(a.c.id))
        data["attempts"] = [dict(r._mapping) for r in attempts]
        return data

    def redeliver(
        self, session: Session, actor: Identity, endpoint_id: str, delivery_id: str, now: datetime
    ) -> dict[str, Any]:
        endpoint = self.subscriptions.enabled_row(session, endpoint_id, actor)
        d = self.subscriptions.tables.deliveries
        row = None
        if is_uuid(delivery_id):
            row = session.execute(
                select(d).where(d.c.id == delivery_id, d.c.endpoint_id == endpoint.id)
            ).first()
        if row is None:
            raise NotFound(f"No delivery {delivery_id!r} of this endpoint.")
        if row.status == "pending":
            raise Conflict("The delivery is pending already: it will be sent.", current_status="pending")
        again = session.execute(
            update(d)
            .where(d.c.id == row.id, d.c.status != "pending")
            .values(status="pending", next_attempt_at=now, **_AGAIN)
            .returning(*d.c)
        ).first()
        if again is None:  # another request put it back first
            raise Conflict("The delivery is pending already: it will be sent.", current_status="pending")
        self.subscriptions.wake_dispatchers(session)
        return delivery_out(again)

    def redeliver_failed(
        self,
        session: Session,
        actor: Identity,
        endpoint_id: str,
        since: datetime,
        until: datetime | None,
        now: datetime,
    ) -> int:
        """Every failed delivery of the endpoint created in [since, until) back to pending."""
        endpoint = self.subscriptions.enabled_row(session, endpoint_id, actor)
        d = self.subscriptions.tables.deliveries
        stmt = update(d).where(
            d.c.endpoint_id == endpoint.id, d.c.status == "failed", d.c.created_at >= since
        )
        if until is not None:
            stmt = stmt.where(d.c.created_at < until)
        result = session.execute(stmt.values(status="pending", next_attempt_at=now, **_AGAIN))
        count = cast(CursorResult[Any], result).rowcount
        if count:
            self.subscriptions.wake_dispatchers(session)
        return int(count)

"""Fan-out: the deliveries of the events the outbox relay publishes.

The relay calls :meth:`Fanout.write` inside the transaction that marks a batch of
outbox rows published, after the broker confirmed them: the rows and their
deliveries commit together or not at all, so an event gets its deliveries exactly
once whatever restarts (a relay that dies before the commit republishes the batch,
and fans it out then). Matching happens here, in Python, against the enabled
endpoints read in the same transaction: patterns (``shipment.*``) and the
warehouses an endpoint is limited to.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from .catalogue import Catalogue, PublicEvent, matches
from .tables import WebhookTables


def dispatch_channel(service: str) -> str:
    """The PostgreSQL channel a fan-out notifies and the dispatcher listens on."""
    return f"logistics_webhooks_{service}"


@dataclass(frozen=True)
class Subscriber:
    id: str
    patterns: tuple[str, ...]
    warehouses: frozenset[str] | None

    def wants(self, event: PublicEvent, warehouse: str | None) -> bool:
        if not any(matches(p, event.type) for p in self.patterns):
            return False
        # Limited to some warehouses: an event of none (or another) is not theirs.
        return self.warehouses is None or (warehouse is not None and warehouse in self.warehouses)


def subscribers(session: Session, tables: WebhookTables) -> list[Subscriber]:
    e = tables.endpoints
    rows = session.execute(select(e.c.id, e.c.event_types, e.c.warehouses).where(e.c.enabled.is_(True)))
    return [
        Subscriber(
            id=row.id,
            patterns=tuple(orjson.loads(row.event_types)),
            warehouses=None if row.warehouses is None else frozenset(orjson.loads(row.warehouses)),
        )
        for row in rows
    ]


class Fanout:
    def __init__(self, service: str, tables: WebhookTables, catalogue: Catalogue | None = None) -> None:
        self.service = service
        self.tables = tables
        self.catalogue = catalogue or Catalogue(service)

    def write(self, session: Session, rows: Sequence[Any], now: datetime) -> int:
        """Write the messages and deliveries of ``rows`` (outbox rows: event_id, event_type,
        payload); returns how many deliveries. Events nobody subscribes to cost one
        SELECT of the enabled endpoints, and none when no row is a public event."""
        events = [
            (row, self.catalogue.by_source[row.event_type])
            for row in rows
            if row.event_type in self.catalogue.by_source
        ]
        if not events:
            return 0
        targets = subscribers(session, self.tables)
        if not targets:
            return 0
        messages: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        for row, public in events:
            envelope = orjson.loads(row.payload)
            data = envelope["data"]
            warehouse = data.get(public.warehouse_field) if public.warehouse_field else None
            wanting = [t for t in targets if t.wants(public, warehouse)]
            if not wanting:
                continue
            messages.append(
                {
                    "id": row.event_id,
                    "event_type": public.type,
                    "warehouse": warehouse,
                    "payload": public.render(data, envelope["occurred_at"]).decode(),
                    "created_at": now,
                }
            )
            deliveries.extend(new_delivery(t.id, row.event_id, public.type, now) for t in wanting)
        return write_deliveries(session, self.tables, messages, deliveries, self.service)


def new_delivery(endpoint_id: str, message_id: str, event_type: str, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "endpoint_id": endpoint_id,
        "message_id": message_id,
        "event_type": event_type,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def write_deliveries(
    session: Session,
    tables: WebhookTables,
    messages: list[dict[str, Any]],
    deliveries: list[dict[str, Any]],
    service: str,
) -> int:
    """Insert messages and deliveries (an event already fanned out adds nothing), and wake
    the dispatchers when the transaction commits."""
    if not deliveries:
        return 0
    _insert_ignoring_duplicates(session, tables.messages, messages)
    _insert_ignoring_duplicates(session, tables.deliveries, deliveries)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(dispatch_channel(service), "")))
    return len(deliveries)


def _insert_ignoring_duplicates(session: Session, table: Table, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    session.execute(insert(table).on_conflict_do_nothing(), values)

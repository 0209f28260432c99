"""Writing events to the transactional outbox (publishing is the relay's job)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table, text
from sqlalchemy.orm import Session

from .events import REGISTRY, Envelope, EventRegistry, new_envelope


def notify_channel(service: str) -> str:
    """The PostgreSQL channel a commit with outbox rows notifies and the relay listens on."""
    return f"logistics_outbox_{service}"


class Outbox:
    """An event sink bound to one DB session: events commit or roll back with the change.

    Business code takes an ``Outbox`` and calls :meth:`emit`; it never talks to
    the broker, so a request thread never waits on RabbitMQ.
    """

    def __init__(
        self,
        session: Session,
        table: Table,
        *,
        producer: str,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        registry: EventRegistry = REGISTRY,
    ) -> None:
        self.session = session
        self.table = table
        self.producer = producer
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.registry = registry

    def emit(self, type: str, data: dict[str, Any], version: int = 1) -> Envelope:
        envelope = new_envelope(
            type,
            data,
            producer=self.producer,
            version=version,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )
        body = self.registry.validate_outgoing(envelope)
        self._notify_relay()
        self.session.execute(
            self.table.insert().values(
                event_id=str(envelope.id),
                event_type=type,
                event_version=version,
                payload=orjson.dumps(body).decode(),
                created_at=datetime.now(UTC),
            )
        )
        return envelope

    def _notify_relay(self) -> None:
        """Wake the relay (PostgreSQL ``NOTIFY`` is delivered at commit, and only then)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return
        transaction = self.session.get_transaction()
        if self.session.info.get("logistics.notified") is transaction:
            return
        self.session.info["logistics.notified"] = transaction
        self.session.execute(
            text("SELECT pg_notify(:channel, '')"), {"channel": notify_channel(self.producer)}
        )

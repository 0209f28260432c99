"""Tables every service's database carries: the outbox and idempotency keys.

Each service calls :func:`add_platform_tables` on its own metadata so the
tables live in its own database and its own Alembic chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

if TYPE_CHECKING:
    from .webhooks.tables import WebhookTables

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class PlatformTables:
    outbox: Table
    idempotency_keys: Table
    inbox: Table
    #: Outbound webhooks' tables, in the services that offer webhook subscriptions.
    webhooks: WebhookTables | None = None


def add_platform_tables(metadata: MetaData, *, webhooks: bool = False) -> PlatformTables:
    outbox = Table(
        "outbox",
        metadata,
        # A sequence, not the event id, orders the relay: it publishes in commit-ish order.
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("event_version", Integer, nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
    )
    Index(
        "ix_outbox_unpublished",
        outbox.c.id,
        postgresql_where=outbox.c.published_at.is_(None),
        sqlite_where=outbox.c.published_at.is_(None),
    )
    idempotency_keys = Table(
        "idempotency_keys",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("caller", String(200), nullable=False),
        Column("route", String(200), nullable=False),
        Column("key", String(255), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        # running: the first request holds it; done: response stored below.
        Column("state", String(10), nullable=False),
        Column("locked_until", DateTime(timezone=True), nullable=False),
        Column("response_status", Integer, nullable=True),
        Column("response_headers", Text, nullable=True),
        Column("response_body", LargeBinary, nullable=True),
        # JSON list of the warehouses the first request was allowed to use: a replay
        # re-checks them against the caller's current token.
        Column("scope", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("caller", "route", "key", name="uq_idempotency_keys_caller_route_key"),
    )
    # One row per (handler, event) applied: written in the handler's own
    # transaction, so a redelivered event finds it and has no second effect.
    inbox = Table(
        "inbox",
        metadata,
        Column("handler", String(200), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    hooks = None
    if webhooks:
        from .webhooks.tables import add_webhook_tables

        hooks = add_webhook_tables(metadata)
    return PlatformTables(outbox=outbox, idempotency_keys=idempotency_keys, inbox=inbox, webhooks=hooks)

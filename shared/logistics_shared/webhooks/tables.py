"""The webhook tables of a service's database (its own Alembic chain creates them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ..platform_tables import BigId
from ..sorting import SortKey, Sorts

#: The sorts of a service's webhook endpoints (oldest first) and of an endpoint's
#: deliveries (newest first), each served by its (created_at, id) index below.
ENDPOINT_SORTS = Sorts((SortKey("created_at", "datetime"),), default="created_at")
DELIVERY_SORTS = Sorts((SortKey("created_at", "datetime"),), default="-created_at")


@dataclass(frozen=True)
class WebhookTables:
    endpoints: Table
    messages: Table
    deliveries: Table
    attempts: Table


def add_webhook_tables(metadata: MetaData) -> WebhookTables:
    endpoints = Table(
        "webhook_endpoints",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("url", Text, nullable=False),
        Column("description", Text, nullable=True),
        # JSON list of patterns as given ("shipment.*"): matched in Python at fan-out.
        Column("event_types", Text, nullable=False),
        # JSON list of warehouse codes, or NULL for every warehouse (admins, support).
        Column("warehouses", Text, nullable=True),
        Column("enabled", Boolean, nullable=False),
        # "failing" when the dispatcher disabled it, "manual" when a person did.
        Column("disabled_reason", String(20), nullable=True),
        Column("disabled_at", DateTime(timezone=True), nullable=True),
        # Fernet tokens (secretbox): the signing secret, and the one it replaced while
        # that is still in its grace period.
        Column("secret", Text, nullable=False),
        Column("previous_secret", Text, nullable=True),
        Column("previous_secret_until", DateTime(timezone=True), nullable=True),
        # The first failure since the last success: the endpoint is disabled when it is old.
        Column("failing_since", DateTime(timezone=True), nullable=True),
        Column("created_by", String(200), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("version", Integer, nullable=False),
    )
    Index("ix_webhook_endpoints_created", endpoints.c.created_at, endpoints.c.id)
    # One public payload per event (or ping), shared by its deliveries: a redelivery a day
    # later sends the same bytes, after the outbox row is long gone.
    messages = Table(
        "webhook_messages",
        metadata,
        Column("id", String(36), primary_key=True),  # the event id: the webhook-id header
        Column("event_type", String(100), nullable=False),
        Column("warehouse", String(32), nullable=True),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Index("ix_webhook_messages_created", messages.c.created_at)
    deliveries = Table(
        "webhook_deliveries",
        metadata,
        Column("id", String(36), primary_key=True),
        Column(
            "endpoint_id", String(36), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
        ),
        Column(
            "message_id", String(36), ForeignKey("webhook_messages.id", ondelete="CASCADE"), nullable=False
        ),
        Column("event_type", String(100), nullable=False),
        # pending (due at next_attempt_at) -> delivered | failed (retries exhausted)
        Column("status", String(12), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", DateTime(timezone=True), nullable=True),
        # A dispatcher's claim: no other dispatcher sends it before claimed_until.
        Column("claimed_until", DateTime(timezone=True), nullable=True),
        Column("claim", String(36), nullable=True),
        Column("last_status_code", Integer, nullable=True),
        Column("last_error", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("finished_at", DateTime(timezone=True), nullable=True),
        UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_endpoint_message"),
    )
    Index(
        "ix_webhook_deliveries_due",
        deliveries.c.next_attempt_at,
        postgresql_where=deliveries.c.status == "pending",
        sqlite_where=deliveries.c.status == "pending",
    )
    Index(
        "ix_webhook_deliveries_endpoint", deliveries.c.endpoint_id, deliveries.c.created_at, deliveries.c.id
    )
    attempts = Table(
        "webhook_attempts",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column(
            "delivery_id", String(36), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        ),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        # delivered | http_error | timeout | connect_error | refused (an address not allowed)
        Column("outcome", String(20), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("latency_ms", Integer, nullable=False),
        Column("response_body", Text, nullable=True),  # the first KiB, for the log
        Column("error", Text, nullable=True),
    )
    Index("ix_webhook_attempts_delivery", attempts.c.delivery_id, attempts.c.id)
    return WebhookTables(endpoints=endpoints, messages=messages, deliveries=deliveries, attempts=attempts)

"""Carriers, their services and rate tables, and purchased labels."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from logistics_shared.sorting import SortKey, Sorts

from .meta import metadata

#: The sorts of GET /v1/carriers: by code (the primary key).
CARRIER_SORTS = Sorts((SortKey("code", unique=True),), default="code")

carriers = Table(
    "carriers",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    # Tracking numbers are this prefix + 10 digits + a Luhn check digit.
    Column("tracking_prefix", String(4), nullable=False),
    # The key of the carrier's HMAC-signed tracking webhook, never leaving the service: a Fernet
    # token (logistics_shared.secretbox, the registry's "logistics.secretbox").
    Column("webhook_secret_encrypted", Text, nullable=True),
    # The same key in plaintext, for carriers created before 0009 only (the previous release
    # reads it); NULL for every carrier created since. A later contract step clears it.
    Column("webhook_secret", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

carrier_services = Table(
    "carrier_services",
    metadata,
    Column("carrier", String(32), ForeignKey("carriers.code"), primary_key=True),
    Column("code", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("rate_table", Text, nullable=False),  # JSON, validated by RateTableSchema
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: One label per shipment: it is bought once, when the shipment is ready.
labels = Table(
    "labels",
    metadata,
    Column("shipment_id", String(36), ForeignKey("shipments.id"), primary_key=True),
    Column("carrier", String(32), nullable=False),
    Column("service", String(32), nullable=False),
    Column("tracking_number", String(32), nullable=False),
    Column("zone", String(32), nullable=False),
    Column("billable_weight_g", Integer, nullable=False),
    Column("amount_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("format", String(3), nullable=False),
    Column("document", LargeBinary, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["carrier", "service"],
        ["carrier_services.carrier", "carrier_services.code"],
    ),
    UniqueConstraint("tracking_number"),
    CheckConstraint("format IN ('pdf', 'zpl')", name="format_known"),
    CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
)


def stored_secrets() -> tuple[Any, ...]:
    """The columns of encrypted secrets (``logistics reencrypt-secrets shipping``)."""
    return (carriers.c.webhook_secret_encrypted,)

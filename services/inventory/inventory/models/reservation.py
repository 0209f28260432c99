"""Reservations: stock held for a reference (a shipment), all lines or none."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, String, Table

from logistics_shared.sorting import SortKey, Sorts

from .meta import metadata

RESERVATION_STATES = ("active", "consumed", "released", "expired")

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("warehouse_id", Integer, ForeignKey("warehouses.id"), nullable=False),
    Column("reference", String(100), nullable=False),
    Column("status", String(10), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('active', 'consumed', 'released', 'expired')", name="status_known"),
)
Index("ix_reservations_active_expiry", reservations.c.status, reservations.c.expires_at)
Index("ix_reservations_reference", reservations.c.reference)
Index("ix_reservations_created_id", reservations.c.created_at, reservations.c.id)

#: The sorts of GET /v1/reservations (oldest first, as it always was).
RESERVATION_SORTS = Sorts((SortKey("created_at", "datetime"),), default="created_at")

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("reservation_id", String(36), ForeignKey("reservations.id"), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)
Index("ix_reservation_lines_item", reservation_lines.c.item_id)

"""Inventory's tables (SQLAlchemy Core: the hot paths are single statements)."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
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

from logistics_shared.db import new_metadata
from logistics_shared.platform_tables import BigId, add_platform_tables

metadata = new_metadata()
platform = add_platform_tables(metadata)
outbox = platform.outbox

MOVEMENT_KINDS = ("receipt", "adjustment", "transfer_out", "transfer_in", "issue")
RESERVATION_STATES = ("active", "consumed", "released", "expired")

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("unit_weight_g", Integer, nullable=False),
    Column("length_mm", Integer, nullable=False),
    Column("width_mm", Integer, nullable=False),
    Column("height_mm", Integer, nullable=False),
    Column("reorder_point", Integer, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("reorder_point >= 0", name="reorder_point_non_negative"),
)

warehouses = Table(
    "warehouses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=False),  # JSON, validated by AddressSchema
    Column("created_at", DateTime(timezone=True), nullable=False),
)

locations = Table(
    "locations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("warehouse_id", Integer, ForeignKey("warehouses.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("description", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("warehouse_id", "code", name="uq_locations_warehouse_code"),
)

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("warehouse_id", Integer, ForeignKey("warehouses.id"), nullable=False),
    Column("on_hand", Integer, nullable=False, server_default="0"),
    Column("reserved", Integer, nullable=False, server_default="0"),
    UniqueConstraint("item_id", "warehouse_id", name="uq_stock_levels_item_warehouse"),
    # The database itself refuses an oversold or negative level.
    CheckConstraint("on_hand >= 0", name="on_hand_non_negative"),
    CheckConstraint("reserved >= 0", name="reserved_non_negative"),
    CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
)
Index("ix_stock_levels_warehouse", stock_levels.c.warehouse_id, stock_levels.c.item_id)

movements = Table(
    "movements",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("warehouse_id", Integer, ForeignKey("warehouses.id"), nullable=False),
    Column("location_id", Integer, ForeignKey("locations.id"), nullable=True),
    Column("kind", String(20), nullable=False),
    Column("quantity", Integer, nullable=False),  # signed: + in, - out
    Column("reason", String(20), nullable=True),
    Column("note", String(500), nullable=True),
    Column("reference", String(100), nullable=True),
    Column("reservation_id", String(36), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("quantity <> 0", name="quantity_non_zero"),
    CheckConstraint(
        "kind IN ('receipt', 'adjustment', 'transfer_out', 'transfer_in', 'issue')", name="kind_known"
    ),
)
Index("ix_movements_item_warehouse", movements.c.item_id, movements.c.warehouse_id)
Index("ix_movements_created_at", movements.c.created_at)

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

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("reservation_id", String(36), ForeignKey("reservations.id"), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)
Index("ix_reservation_lines_item", reservation_lines.c.item_id)


def get_metadata() -> MetaData:
    return metadata

"""The catalogue: items, warehouses and their locations."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from logistics_shared.sorting import SortKey, Sorts

from .meta import metadata

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
# ?sort= keys besides the SKU, each with the id breaking ties (migration 0006).
Index("ix_items_name_id", items.c.name, items.c.id)
Index("ix_items_created_id", items.c.created_at, items.c.id)
# ?q= (name contains, SKU prefix, case-insensitive): trigram GIN indexes on PostgreSQL;
# SQLite has plain indexes of the same names, as support's ticket search.
Index("ix_items_name_trgm", items.c.name, postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"})
Index("ix_items_sku_trgm", items.c.sku, postgresql_using="gin", postgresql_ops={"sku": "gin_trgm_ops"})

#: The sorts of GET /v1/items (the SKU is unique: no tie to break).
ITEM_SORTS = Sorts(
    (SortKey("sku", unique=True), SortKey("name"), SortKey("created_at", "datetime")),
    default="sku",
    id_kind="int",
)

warehouses = Table(
    "warehouses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=False),  # JSON, validated by AddressSchema
    # Grows with every change: the ETag, and how consumers of warehouse.* events order them.
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # NULL on a warehouse never changed since before the column existed.
    Column("updated_at", DateTime(timezone=True), nullable=True),
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

#: The sorts of GET /v1/warehouses and of a warehouse's locations: by code (unique).
WAREHOUSE_SORTS = Sorts((SortKey("code", unique=True),), default="code", id_kind="int")
LOCATION_SORTS = Sorts((SortKey("code", unique=True),), default="code", id_kind="int")

"""Stock levels per item and warehouse, and the movement ledger that explains them."""

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
    UniqueConstraint,
)

from logistics_shared.platform_tables import BigId
from logistics_shared.sorting import SortKey, Sorts

from .meta import metadata

MOVEMENT_KINDS = ("receipt", "adjustment", "transfer_out", "transfer_in", "issue")

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
# ?sort=on_hand / available, the id breaking ties (migration 0006).
Index("ix_stock_levels_on_hand_id", stock_levels.c.on_hand, stock_levels.c.id)
Index("ix_stock_levels_available_id", (stock_levels.c.on_hand - stock_levels.c.reserved), stock_levels.c.id)

#: The sorts of GET /v1/stock. ``created`` is the order each (item, warehouse) level was
#: first stocked in (its id), the order the list always had.
STOCK_SORTS = Sorts(
    (SortKey("created", "int", unique=True), SortKey("on_hand", "int"), SortKey("available", "int")),
    default="created",
    id_kind="int",
)

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
Index("ix_movements_created_id", movements.c.created_at, movements.c.id)

#: The sorts of GET /v1/movements: newest first unless asked otherwise.
MOVEMENT_SORTS = Sorts((SortKey("created_at", "datetime"),), default="-created_at", id_kind="int")

"""Indexes for ?sort= and ?q= on the lists: a (key, id) B-tree per sort key, trigram search on items

Each allowed sort key of a list gets a B-tree on (key, id), the id breaking ties, so the
keyset page ``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n`` is an index range
in either direction (tests/shared/test_list_plans.py checks the plans at 100,000 rows).
``GET /v1/items?q=`` (name contains, SKU prefix, any case) is an ILIKE, served by pg_trgm
GIN indexes on PostgreSQL; SQLite gets plain indexes of the same names, so both schemas
match the models (as support's migration 0006 does for its ticket search).

Expand only: new indexes, nothing dropped (ix_movements_created_at stays for the code of
the previous release, which orders by it).

Revision ID: 0006
Revises: 0005
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BTREES: tuple[tuple[str, str, list[Any]], ...] = (
    ("ix_items_name_id", "items", ["name", "id"]),
    ("ix_items_created_id", "items", ["created_at", "id"]),
    ("ix_stock_levels_on_hand_id", "stock_levels", ["on_hand", "id"]),
    ("ix_stock_levels_available_id", "stock_levels", [sa.text("(on_hand - reserved)"), "id"]),
    ("ix_movements_created_id", "movements", ["created_at", "id"]),
    ("ix_reservations_created_id", "reservations", ["created_at", "id"]),
)
TRIGRAMS = (
    ("ix_items_name_trgm", "items", "name"),
    ("ix_items_sku_trgm", "items", "sku"),
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, table, columns in BTREES:
        op.create_index(name, table, columns)
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in TRIGRAMS:
        if postgres:
            op.create_index(
                name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"}
            )
        else:
            op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, *_ in (*TRIGRAMS, *BTREES):
        op.drop_index(name, table_name=table)

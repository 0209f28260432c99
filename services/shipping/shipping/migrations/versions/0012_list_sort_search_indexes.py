"""Indexes for ?sort= and ?q= on the shipment list: (key, id) B-trees, trigram search

Each allowed sort key of ``GET /v1/shipments`` gets a B-tree on (key, id), the id breaking
ties, so the keyset page ``WHERE (key, id) < (:key, :id) ORDER BY key DESC, id DESC LIMIT n``
is an index range (tests/shared/test_list_plans.py checks the plans at 100,000 rows).

``?q=`` looks in the reference, the recipient's name and the postal code (a substring, any
case): an ILIKE that pg_trgm GIN indexes serve on PostgreSQL; SQLite gets plain indexes of
the same names, as support's migration 0006 does for its ticket search. The name and postal
code live inside ``ship_to`` (JSON text), so this step copies them into two new columns
(nullable: the expand step; the code of this release writes them on every new shipment,
and this migration fills them on the rows already there).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BTREES = (
    ("ix_shipments_created_id", ["created_at", "id"]),
    ("ix_shipments_updated_id", ["updated_at", "id"]),
    ("ix_shipments_reference_id", ["reference", "id"]),
)
SEARCHED = ("reference", "recipient_name", "postal_code")
#: The backfill per dialect (module constants: tests/ops/test_migration_rules.py reads them).
BACKFILL_POSTGRESQL = (
    "UPDATE shipments SET recipient_name = ship_to::jsonb ->> 'name', "
    "postal_code = ship_to::jsonb ->> 'postal_code'"
)
BACKFILL_SQLITE = (
    "UPDATE shipments SET recipient_name = json_extract(ship_to, '$.name'), "
    "postal_code = json_extract(ship_to, '$.postal_code')"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    postgres = dialect == "postgresql"
    with op.batch_alter_table("shipments") as batch:
        batch.add_column(sa.Column("recipient_name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("postal_code", sa.String(20), nullable=True))
    if postgres:
        op.execute(BACKFILL_POSTGRESQL)
    else:
        op.execute(BACKFILL_SQLITE)
    for name, columns in BTREES:
        op.create_index(name, "shipments", columns)
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCHED:
        name = f"ix_shipments_{column}_trgm"
        if postgres:
            op.create_index(
                name, "shipments", [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"}
            )
        else:
            op.create_index(name, "shipments", [column])


def downgrade() -> None:
    for column in SEARCHED:
        op.drop_index(f"ix_shipments_{column}_trgm", table_name="shipments")
    for name, _ in BTREES:
        op.drop_index(name, table_name="shipments")
    with op.batch_alter_table("shipments") as batch:
        batch.drop_column("postal_code")
        batch.drop_column("recipient_name")

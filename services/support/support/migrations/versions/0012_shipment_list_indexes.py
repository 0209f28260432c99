"""indexes of the shipment read model's list: newest change first (alone, by status, by warehouse),
by reference, and the lookup by tracking number

Expand only: new indexes, no column changes, so code of revision 0011 runs unchanged on it.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INDEXES: tuple[tuple[str, list[str | sa.TextClause]], ...] = (
    ("ix_shipment_view_updated", ["updated_at", "shipment_id"]),
    ("ix_shipment_view_status_updated", ["status", "updated_at", "shipment_id"]),
    ("ix_shipment_view_warehouse_updated", ["warehouse", "updated_at", "shipment_id"]),
    # The sort key of sort=reference (and ?reference=): coalesce(reference, ''), never NULL.
    ("ix_shipment_view_reference", [sa.text("coalesce(reference, '')"), "shipment_id"]),
    ("ix_shipment_view_tracking_number", ["tracking_number"]),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "shipment_view", columns)


def downgrade() -> None:
    for name, _ in INDEXES:
        op.drop_index(name, table_name="shipment_view")

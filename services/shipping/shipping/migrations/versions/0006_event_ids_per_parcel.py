"""carrier event ids are unique per tracking number; idempotency keys remember their scope

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracking_events") as batch:
        batch.drop_constraint("uq_tracking_events_source_external_id", type_="unique")
        batch.create_unique_constraint(
            "uq_tracking_events_source_shipment_external_id", ["source", "shipment_id", "external_id"]
        )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("scope", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("scope")
    with op.batch_alter_table("tracking_events") as batch:
        batch.drop_constraint("uq_tracking_events_source_shipment_external_id", type_="unique")
        batch.create_unique_constraint("uq_tracking_events_source_external_id", ["source", "external_id"])

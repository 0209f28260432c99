"""warehouses get a version (ETag, and the order of warehouse.* events) and updated_at

Expand only: both columns have a default or allow NULL, so code that does not know
them keeps inserting warehouses; existing rows are version 1, never updated.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("warehouses") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("warehouses") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("version")

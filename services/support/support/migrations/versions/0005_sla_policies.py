"""SLA policies per priority, editable by admins (seeded with the defaults)

Revision ID: 0005
Revises: 0004
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: priority -> (first response, resolution) in minutes: the targets 0004 shipped as code.
DEFAULTS = {
    "urgent": (60, 4 * 60),
    "high": (4 * 60, 24 * 60),
    "normal": (8 * 60, 72 * 60),
    "low": (24 * 60, 7 * 24 * 60),
}


def upgrade() -> None:
    table = op.create_table(
        "sla_policies",
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "priority IN ('low', 'normal', 'high', 'urgent')", name=op.f("ck_sla_policies_priority_known")
        ),
        sa.CheckConstraint(
            "first_response_minutes > 0 AND first_response_minutes <= resolution_minutes",
            name=op.f("ck_sla_policies_targets_ordered"),
        ),
        sa.PrimaryKeyConstraint("priority", name=op.f("pk_sla_policies")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        table,
        [
            {
                "priority": priority,
                "first_response_minutes": first,
                "resolution_minutes": resolution,
                "version": 1,
                "updated_by": "migration",
                "updated_at": now,
            }
            for priority, (first, resolution) in DEFAULTS.items()
        ],
    )


def downgrade() -> None:
    op.drop_table("sla_policies")

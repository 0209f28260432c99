"""carriers, their services with rate tables, and purchased labels

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "carriers",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tracking_prefix", sa.String(length=4), nullable=False),
        sa.Column("webhook_secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_carriers")),
    )
    op.create_table(
        "carrier_services",
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rate_table", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["carrier"], ["carriers.code"], name=op.f("fk_carrier_services_carrier_carriers")
        ),
        sa.PrimaryKeyConstraint("carrier", "code", name=op.f("pk_carrier_services")),
    )
    op.create_table(
        "labels",
        sa.Column("shipment_id", sa.String(length=36), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=32), nullable=False),
        sa.Column("zone", sa.String(length=32), nullable=False),
        sa.Column("billable_weight_g", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("format", sa.String(length=3), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("format IN ('pdf', 'zpl')", name=op.f("ck_labels_format_known")),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_labels_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["carrier", "service"],
            ["carrier_services.carrier", "carrier_services.code"],
            name=op.f("fk_labels_carrier_carrier_services"),
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_labels_shipment_id_shipments")
        ),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_labels")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_labels_tracking_number")),
    )


def downgrade() -> None:
    op.drop_table("labels")
    op.drop_table("carrier_services")
    op.drop_table("carriers")

"""tickets, comments, the shipment read model, automatic tickets

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("number", BigId, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("shipment_id", sa.String(length=36), nullable=True),
        sa.Column("order_reference", sa.String(length=100), nullable=True),
        sa.Column("tracking_number", sa.String(length=32), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('new', 'open', 'pending', 'solved', 'closed')", name=op.f("ck_tickets_status_known")
        ),
        sa.CheckConstraint(
            "type IN ('question', 'incident', 'problem', 'task')", name=op.f("ck_tickets_type_known")
        ),
        sa.CheckConstraint(
            "priority IN ('low', 'normal', 'high', 'urgent')", name=op.f("ck_tickets_priority_known")
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_tickets")),
        sa.UniqueConstraint("id", name=op.f("uq_tickets_id")),
    )
    op.create_index("ix_tickets_created", "tickets", ["created_at", "id"], unique=False)
    op.create_index("ix_tickets_shipment", "tickets", ["shipment_id"], unique=False)
    op.create_index("ix_tickets_status", "tickets", ["status"], unique=False)
    op.create_table(
        "ticket_comments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(length=10), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "visibility IN ('public', 'internal')", name=op.f("ck_ticket_comments_visibility_known")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_comments_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_comments")),
    )
    op.create_index("ix_ticket_comments_ticket", "ticket_comments", ["ticket_id", "id"], unique=False)
    op.create_table(
        "shipment_view",
        sa.Column("shipment_id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("warehouse", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("tracking_number", sa.String(length=32), nullable=True),
        sa.Column("tracking", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_shipment_view")),
    )
    op.create_table(
        "auto_tickets",
        sa.Column("shipment_id", sa.String(length=36), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shipment_id", "cause", name=op.f("pk_auto_tickets")),
    )


def downgrade() -> None:
    op.drop_table("auto_tickets")
    op.drop_table("shipment_view")
    op.drop_index("ix_ticket_comments_ticket", table_name="ticket_comments")
    op.drop_table("ticket_comments")
    op.drop_index("ix_tickets_status", table_name="tickets")
    op.drop_index("ix_tickets_shipment", table_name="tickets")
    op.drop_index("ix_tickets_created", table_name="tickets")
    op.drop_table("tickets")

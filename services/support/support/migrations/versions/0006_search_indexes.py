"""Trigram indexes for text search on ticket subjects and comments (PostgreSQL)

``?q=`` is a case-insensitive substring search (ILIKE '%q%'), which a B-tree
cannot serve; pg_trgm's GIN indexes can. pg_trgm is a trusted extension
(PostgreSQL 13+): the database owner may create it without superuser rights.
SQLite gets plain indexes of the same names, so both schemas match the models.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_tickets_subject_trgm", "tickets", "subject"),
    ("ix_ticket_comments_body_trgm", "ticket_comments", "body"),
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        if postgres:
            op.create_index(
                name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"}
            )
        else:
            op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)

"""Indexes for ?sort= on the ticket and comment lists: a (key, id) B-tree per sort key

``GET /v1/tickets?sort=updated_at`` (either direction) and a ticket's comments by
``created_at`` page with ``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n``: an
index range on these (tests/shared/test_list_plans.py checks the plans at 100,000 rows).
``created_at`` of tickets already has ix_tickets_created (0003). Expand only.

Revision ID: 0014
Revises: 0012
"""

from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_tickets_updated_id", "tickets", ["updated_at", "id"]),
    ("ix_ticket_comments_ticket_created", "ticket_comments", ["ticket_id", "created_at", "id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)

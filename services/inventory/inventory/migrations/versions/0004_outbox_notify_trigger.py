"""the outbox wakes the relay: a statement-level trigger raises NOTIFY (PostgreSQL only)

One notification per inserting transaction, delivered at its commit, on the
channel the relay listens on (``logistics_shared.outbox.notify_channel``);
SQLite has no NOTIFY and keeps polling.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHANNEL = "logistics_outbox_inventory"


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION logistics_outbox_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify(TG_ARGV[0], '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        f"FOR EACH STATEMENT EXECUTE FUNCTION logistics_outbox_notify('{CHANNEL}')"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS logistics_outbox_notify()")

"""one live shipment per (warehouse, reference): an index for the check, and its lock (PostgreSQL)

``ix_shipments_warehouse_reference`` serves the check a create makes
(``shipping/domain/references.py``). On PostgreSQL, ``shipping_live_shipment(warehouse,
reference)`` takes a transaction-scoped advisory lock on the pair and then returns the
oldest shipment with it that is not cancelled, in one statement: VOLATILE, so the SELECT
after the lock runs with a snapshot taken after the wait (READ COMMITTED), and sees the
row of a concurrent create that held the lock. The two-key form of the advisory lock has
a key space of its own; the first key says "a shipment reference", the second is the
pair's hash (a collision only makes two creates of different references wait for each
other, never answers wrongly: the SELECT compares the values themselves).

Expand only: the previous release neither calls the function nor needs the index.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The advisory lock's first key is 1397248082 = 0x53485052, "SHPR" in ASCII. A plain string,
# not an f-string: tests/ops/test_migration_rules.py reads the SQL an upgrade executes.
LIVE_SHIPMENT = """
CREATE OR REPLACE FUNCTION shipping_live_shipment(p_warehouse text, p_reference text)
RETURNS TABLE (id varchar, status varchar, created_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1397248082, hashtext(p_warehouse || E'\\n' || p_reference));
    RETURN QUERY
        SELECT s.id, s.status, s.created_at FROM shipments AS s
        WHERE s.warehouse = p_warehouse AND s.reference = p_reference AND s.status <> 'cancelled'
        ORDER BY s.created_at, s.id
        LIMIT 1;
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("shipments") as batch:
        batch.create_index("ix_shipments_warehouse_reference", ["warehouse", "reference"], unique=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute(LIVE_SHIPMENT)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS shipping_live_shipment(text, text)")
    with op.batch_alter_table("shipments") as batch:
        batch.drop_index("ix_shipments_warehouse_reference")

"""shipments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 23:51:15.174172
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shipments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=False),
    sa.Column('warehouse', sa.String(length=32), nullable=False),
    sa.Column('ship_to', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('reservation_id', sa.String(length=36), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('awaiting_stock', 'ready', 'on_hold', 'label_purchased', 'in_transit', 'out_for_delivery', 'delivered', 'exception', 'delivery_failed', 'returned', 'cancelled')", name=op.f('ck_shipments_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipments'))
    )
    op.create_index('ix_shipments_reference', 'shipments', ['reference'], unique=False)
    op.create_index('ix_shipments_status', 'shipments', ['status'], unique=False)
    op.create_index('ix_shipments_warehouse_created', 'shipments', ['warehouse', 'created_at'], unique=False)
    op.create_table('parcels',
    sa.Column('shipment_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('weight_g', sa.Integer(), nullable=False),
    sa.Column('length_mm', sa.Integer(), nullable=False),
    sa.Column('width_mm', sa.Integer(), nullable=False),
    sa.Column('height_mm', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_parcels_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('shipment_id', 'seq', name=op.f('pk_parcels'))
    )
    op.create_table('shipment_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('shipment_id', sa.String(length=36), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('cause', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_shipment_history_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipment_history'))
    )
    op.create_index('ix_shipment_history_shipment', 'shipment_history', ['shipment_id', 'id'], unique=False)
    op.create_table('shipment_lines',
    sa.Column('shipment_id', sa.String(length=36), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_shipment_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_shipment_lines_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('shipment_id', 'sku', name=op.f('pk_shipment_lines'))
    )


def downgrade() -> None:
    op.drop_table('shipment_lines')
    op.drop_index('ix_shipment_history_shipment', table_name='shipment_history')
    op.drop_table('shipment_history')
    op.drop_table('parcels')
    op.drop_index('ix_shipments_warehouse_created', table_name='shipments')
    op.drop_index('ix_shipments_status', table_name='shipments')
    op.drop_index('ix_shipments_reference', table_name='shipments')
    op.drop_table('shipments')

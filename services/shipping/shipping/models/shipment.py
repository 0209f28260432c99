"""Shipments: their lines, parcels and the history of every transition."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from logistics_shared.platform_tables import BigId
from logistics_shared.sorting import SortKey, Sorts

from .meta import metadata

STATUSES = (
    "awaiting_stock",
    "ready",
    "on_hold",
    "label_purchased",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "exception",
    "delivery_failed",
    "returned",
    "cancelled",
)

shipments = Table(
    "shipments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("reference", String(100), nullable=False),
    Column("warehouse", String(32), nullable=False),
    Column("ship_to", Text, nullable=False),  # JSON, validated by AddressSchema
    Column("status", String(20), nullable=False),
    Column("hold_reason", Text, nullable=True),
    Column("reservation_id", String(36), nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Copies of ship_to's name and postal code (the JSON above), for ?q= and its trigram
    # indexes; NULL only on a row an older replica wrote during the rollout of 0012.
    Column("recipient_name", String(200), nullable=True),
    Column("postal_code", String(20), nullable=True),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")",
        name="status_known",
    ),
)
Index("ix_shipments_warehouse_created", shipments.c.warehouse, shipments.c.created_at)
Index("ix_shipments_reference", shipments.c.reference)
# A create looks for a live shipment with its (warehouse, reference): domain/references.py.
Index("ix_shipments_warehouse_reference", shipments.c.warehouse, shipments.c.reference)
Index("ix_shipments_status", shipments.c.status)
# ?sort= keys, the id breaking ties (migration 0012).
Index("ix_shipments_created_id", shipments.c.created_at, shipments.c.id)
Index("ix_shipments_updated_id", shipments.c.updated_at, shipments.c.id)
Index("ix_shipments_reference_id", shipments.c.reference, shipments.c.id)
# ?q= (reference, recipient name, postal code; substring, any case): trigram GIN indexes
# on PostgreSQL, plain ones of the same names on SQLite.
SEARCHED = ("reference", "recipient_name", "postal_code")
for _column in SEARCHED:
    Index(
        f"ix_shipments_{_column}_trgm",
        shipments.c[_column],
        postgresql_using="gin",
        postgresql_ops={_column: "gin_trgm_ops"},
    )

#: The sorts of GET /v1/shipments: newest first unless asked otherwise.
SHIPMENT_SORTS = Sorts(
    (SortKey("created_at", "datetime"), SortKey("updated_at", "datetime"), SortKey("reference")),
    default="-created_at",
)

shipment_lines = Table(
    "shipment_lines",
    metadata,
    Column("shipment_id", String(36), ForeignKey("shipments.id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

parcels = Table(
    "parcels",
    metadata,
    Column("shipment_id", String(36), ForeignKey("shipments.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("weight_g", Integer, nullable=False),
    Column("length_mm", Integer, nullable=False),
    Column("width_mm", Integer, nullable=False),
    Column("height_mm", Integer, nullable=False),
)

#: Every transition, with who or what caused it (a person, or an event id).
shipment_history = Table(
    "shipment_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("shipment_id", String(36), ForeignKey("shipments.id"), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("cause", String(200), nullable=False),
    Column("detail", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_shipment_history_shipment", shipment_history.c.shipment_id, shipment_history.c.id)

"""The local read model of shipping's shipments, and the tickets opened automatically."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, func

from logistics_shared.sorting import SortKey, Sorts

from .meta import metadata

#: The statuses shipping's events give a shipment (its lifecycle, GUIDE §6).
SHIPMENT_STATUSES = (
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

#: Shipping's shipments as its events describe them (a local read model).
shipment_view = Table(
    "shipment_view",
    metadata,
    Column("shipment_id", String(36), primary_key=True),
    Column("reference", String(100), nullable=True),
    Column("warehouse", String(32), nullable=True),
    Column("status", String(20), nullable=True),
    Column("tracking_number", String(32), nullable=True),
    Column("tracking", Text, nullable=False),  # JSON list, oldest first
    #: When the event that set the status occurred (older events do not overwrite it).
    Column("updated_at", DateTime(timezone=True), nullable=False),
    #: Shipping's version of the shipment with that status: it orders events before
    #: ``updated_at`` does (replicas' clocks may disagree; versions cannot).
    Column("version", Integer, nullable=True),
)
# The list (GET /v1/shipments): newest change first, alone or after one equality filter, and by
# reference; the lookup by tracking number (migration 0012).
Index("ix_shipment_view_updated", shipment_view.c.updated_at, shipment_view.c.shipment_id)
Index(
    "ix_shipment_view_status_updated",
    shipment_view.c.status,
    shipment_view.c.updated_at,
    shipment_view.c.shipment_id,
)
Index(
    "ix_shipment_view_warehouse_updated",
    shipment_view.c.warehouse,
    shipment_view.c.updated_at,
    shipment_view.c.shipment_id,
)
#: The sort key of ``sort=reference``: never NULL (a NULL reference sorts as ""), so a keyset
#: cursor is a plain range of this index in either direction; ``?reference=`` uses it too.
REFERENCE_KEY = func.coalesce(shipment_view.c.reference, "")
Index("ix_shipment_view_reference", REFERENCE_KEY, shipment_view.c.shipment_id)

#: The sorts of the read model's list (keyset cursors of :mod:`logistics_shared.sorting`,
#: each served by one of the indexes above): newest change first by default.
SHIPMENT_VIEW_SORTS = Sorts((SortKey("updated_at", "datetime"), SortKey("reference")), default="-updated_at")
Index("ix_shipment_view_tracking_number", shipment_view.c.tracking_number)

#: One automatically opened ticket per (shipment, cause), however often the event arrives.
auto_tickets = Table(
    "auto_tickets",
    metadata,
    Column("shipment_id", String(36), primary_key=True),
    Column("cause", String(32), primary_key=True),
    Column("ticket_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

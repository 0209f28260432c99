"""The local read model of shipping's shipments, and the tickets opened automatically."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text

from .meta import metadata

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

#: One automatically opened ticket per (shipment, cause), however often the event arrives.
auto_tickets = Table(
    "auto_tickets",
    metadata,
    Column("shipment_id", String(36), primary_key=True),
    Column("cause", String(32), primary_key=True),
    Column("ticket_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

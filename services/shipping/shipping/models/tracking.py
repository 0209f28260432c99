"""Tracking events from carriers (webhook) and staff."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Index, String, Table, Text, UniqueConstraint

from logistics_shared.platform_tables import BigId

from .meta import metadata

TRACKING_STATUSES = (
    "in_transit",
    "out_for_delivery",
    "delivered",
    "exception",
    "delivery_failed",
    "returned",
)

tracking_events = Table(
    "tracking_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("shipment_id", String(36), ForeignKey("shipments.id"), nullable=False),
    Column("source", String(50), nullable=False),  # "carrier:<code>" (codes up to 32) or "staff"
    # The carrier's own event id, unique per tracking number (carriers number events per
    # parcel): a redelivered webhook finds it and changes nothing.
    Column("external_id", String(100), nullable=True),
    Column("status", String(20), nullable=False),
    Column("description", Text, nullable=True),
    Column("location", String(200), nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "source", "shipment_id", "external_id", name="uq_tracking_events_source_shipment_external_id"
    ),
)
Index("ix_tracking_events_shipment", tracking_events.c.shipment_id, tracking_events.c.occurred_at)

"""Shipping's read model of inventory's catalogue, built from its events only.

Items (what a parcel of them weighs and measures) and warehouses (the sender's
address on labels), each with the version of the last event applied: an older
``*.updated`` delivered late never overwrites a newer one. ``drain_marks`` says
when the consumer that builds them last found its queue empty (see
``logistics_shared.bus.drain``): only then is an unknown SKU or warehouse a 422.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text

from logistics_shared.bus.drain import add_drain_marks_table

from .meta import metadata

catalogue_items = Table(
    "catalogue_items",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("unit_weight_g", Integer, nullable=False),
    Column("length_mm", Integer, nullable=False),
    Column("width_mm", Integer, nullable=False),
    Column("height_mm", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

catalogue_warehouses = Table(
    "catalogue_warehouses",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=False),  # JSON, as the event carried it
    Column("phone", String(40), nullable=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

drain_marks = add_drain_marks_table(metadata)

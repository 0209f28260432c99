"""The shipping service's tables, one module per area, all on ``meta.metadata``.

Importing this package declares every table (Alembic's ``env.py`` and
``get_metadata`` rely on it). Area modules import ``meta``, never each other
or this package, so there is no import cycle; their names are singular
so that none shadows a table re-exported here (``shipments``).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from .carrier import CARRIER_SORTS, carrier_services, carriers, labels
from .catalogue import catalogue_items, catalogue_warehouses, drain_marks
from .meta import metadata, outbox, platform
from .shipment import SHIPMENT_SORTS, STATUSES, parcels, shipment_history, shipment_lines, shipments
from .tracking import TRACKING_STATUSES, tracking_events

__all__ = [
    "CARRIER_SORTS",
    "SHIPMENT_SORTS",
    "STATUSES",
    "TRACKING_STATUSES",
    "carrier_services",
    "carriers",
    "catalogue_items",
    "catalogue_warehouses",
    "drain_marks",
    "get_metadata",
    "labels",
    "metadata",
    "outbox",
    "parcels",
    "platform",
    "shipment_history",
    "shipment_lines",
    "shipments",
    "tracking_events",
]


def get_metadata() -> MetaData:
    """The full metadata: every table of every area (tests compare it to the migrations)."""
    return metadata

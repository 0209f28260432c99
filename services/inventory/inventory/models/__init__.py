"""Inventory's tables (SQLAlchemy Core: the hot paths are single statements), one
module per area, all on ``meta.metadata``.

Importing this package declares every table (Alembic's ``env.py`` and
``get_metadata`` rely on it). Area modules import ``meta``, never each other
or this package, so there is no import cycle; their names are singular
so that none shadows a table re-exported here (``reservations``).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from .catalog import ITEM_SORTS, LOCATION_SORTS, WAREHOUSE_SORTS, items, locations, warehouses
from .imports import IMPORT_KINDS, IMPORT_STATES, import_errors, imports
from .meta import metadata, outbox, platform
from .reservation import RESERVATION_SORTS, RESERVATION_STATES, reservation_lines, reservations
from .stock import MOVEMENT_KINDS, MOVEMENT_SORTS, STOCK_SORTS, movements, stock_levels

__all__ = [
    "IMPORT_KINDS",
    "IMPORT_STATES",
    "ITEM_SORTS",
    "LOCATION_SORTS",
    "MOVEMENT_KINDS",
    "MOVEMENT_SORTS",
    "RESERVATION_SORTS",
    "RESERVATION_STATES",
    "STOCK_SORTS",
    "WAREHOUSE_SORTS",
    "get_metadata",
    "import_errors",
    "imports",
    "items",
    "locations",
    "metadata",
    "movements",
    "outbox",
    "platform",
    "reservation_lines",
    "reservations",
    "stock_levels",
    "warehouses",
]


def get_metadata() -> MetaData:
    """The full metadata: every table of every area (tests compare it to the migrations)."""
    return metadata

"""The support service's tables: tickets, comments, the shipment read model, the
record of tickets opened automatically and SLA policies (plus the platform
tables), one module per area, all on ``meta.metadata``.

Importing this package declares every table (Alembic's ``env.py`` and
``get_metadata`` rely on it). Area modules import ``meta`` (``sla`` also takes
the priorities from ``ticket``), never this package, so there is no import
cycle; their names are singular so that none shadows a table re-exported here
(``tickets``).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from .meta import metadata, outbox, platform
from .shipment import REFERENCE_KEY, SHIPMENT_STATUSES, SHIPMENT_VIEW_SORTS, auto_tickets, shipment_view
from .sla import sla_policies
from .ticket import (
    COMMENT_SORTS,
    PRIORITIES,
    STATUSES,
    TICKET_SORTS,
    TYPES,
    VISIBILITIES,
    ticket_comments,
    tickets,
)

__all__ = [
    "COMMENT_SORTS",
    "PRIORITIES",
    "REFERENCE_KEY",
    "SHIPMENT_STATUSES",
    "SHIPMENT_VIEW_SORTS",
    "STATUSES",
    "TICKET_SORTS",
    "TYPES",
    "VISIBILITIES",
    "auto_tickets",
    "get_metadata",
    "metadata",
    "outbox",
    "platform",
    "shipment_view",
    "sla_policies",
    "ticket_comments",
    "tickets",
]


def get_metadata() -> MetaData:
    """The full metadata: every table of every area (tests compare it to the migrations)."""
    return metadata

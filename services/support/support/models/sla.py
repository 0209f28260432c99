"""SLA policies: first-response and resolution targets per priority."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, Integer, String, Table

from .meta import metadata, one_of
from .ticket import PRIORITIES

#: First-response and resolution targets per priority, edited by admins. A change
#: applies to tickets opened or re-prioritised afterwards; open tickets keep the
#: due times they were promised.
sla_policies = Table(
    "sla_policies",
    metadata,
    Column("priority", String(10), primary_key=True),
    Column("first_response_minutes", Integer, nullable=False),
    Column("resolution_minutes", Integer, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    one_of("priority", PRIORITIES, "priority_known"),
    CheckConstraint(
        "first_response_minutes > 0 AND first_response_minutes <= resolution_minutes",
        name="targets_ordered",
    ),
)

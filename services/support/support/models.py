"""The support service's tables: tickets, comments, the shipment read model and
the record of tickets opened automatically (plus the platform tables).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from logistics_shared.db import new_metadata
from logistics_shared.platform_tables import BigId, add_platform_tables

metadata = new_metadata()
platform = add_platform_tables(metadata)
outbox = platform.outbox

STATUSES = ("new", "open", "pending", "solved", "closed")
TYPES = ("question", "incident", "problem", "task")
PRIORITIES = ("low", "normal", "high", "urgent")
VISIBILITIES = ("public", "internal")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    return CheckConstraint(f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")", name=name)


tickets = Table(
    "tickets",
    metadata,
    # The human ticket number: a per-database counter.
    Column("number", BigId, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("subject", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("queue", String(32), nullable=False),
    Column("tags", Text, nullable=False),  # JSON list of strings
    Column("assignee", String(200), nullable=True),
    Column("shipment_id", String(36), nullable=True),
    Column("order_reference", String(100), nullable=True),
    Column("tracking_number", String(32), nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # SLA: due times from the priority's policy; the resolution clock stops while pending.
    Column("first_response_due", DateTime(timezone=True), nullable=True),
    Column("resolution_due", DateTime(timezone=True), nullable=True),
    Column("first_responded_at", DateTime(timezone=True), nullable=True),
    Column("sla_paused_at", DateTime(timezone=True), nullable=True),
    #: Time spent pending so far: a priority change recomputes the due time and keeps it.
    Column("sla_paused_seconds", Float, nullable=False, server_default="0"),
    Column("sla_first_response_breached_at", DateTime(timezone=True), nullable=True),
    Column("sla_resolution_breached_at", DateTime(timezone=True), nullable=True),
    _one_of("status", STATUSES, "status_known"),
    _one_of("type", TYPES, "type_known"),
    _one_of("priority", PRIORITIES, "priority_known"),
)
Index("ix_tickets_created", tickets.c.created_at, tickets.c.id)
Index("ix_tickets_shipment", tickets.c.shipment_id)
Index("ix_tickets_status", tickets.c.status)
# ?q= searches subjects and comments by substring: trigram GIN indexes on PostgreSQL
# (migration 0006; SQLite has plain indexes of the same names).
Index(
    "ix_tickets_subject_trgm",
    tickets.c.subject,
    postgresql_using="gin",
    postgresql_ops={"subject": "gin_trgm_ops"},
)

ticket_comments = Table(
    "ticket_comments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ticket_id", String(36), ForeignKey("tickets.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("visibility", String(10), nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    _one_of("visibility", VISIBILITIES, "visibility_known"),
)
Index("ix_ticket_comments_ticket", ticket_comments.c.ticket_id, ticket_comments.c.id)
Index(
    "ix_ticket_comments_body_trgm",
    ticket_comments.c.body,
    postgresql_using="gin",
    postgresql_ops={"body": "gin_trgm_ops"},
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

#: One automatically opened ticket per (shipment, cause), however often the event arrives.
auto_tickets = Table(
    "auto_tickets",
    metadata,
    Column("shipment_id", String(36), primary_key=True),
    Column("cause", String(32), primary_key=True),
    Column("ticket_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


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
    _one_of("priority", PRIORITIES, "priority_known"),
    CheckConstraint(
        "first_response_minutes > 0 AND first_response_minutes <= resolution_minutes",
        name="targets_ordered",
    ),
)


def get_metadata() -> MetaData:
    return metadata

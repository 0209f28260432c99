"""Tickets and their comments."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, ForeignKey, Index, Integer, String, Table, Text

from logistics_shared.platform_tables import BigId
from logistics_shared.sorting import SortKey, Sorts

from .meta import metadata, one_of

STATUSES = ("new", "open", "pending", "solved", "closed")
TYPES = ("question", "incident", "problem", "task")
PRIORITIES = ("low", "normal", "high", "urgent")
VISIBILITIES = ("public", "internal")

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
    one_of("status", STATUSES, "status_known"),
    one_of("type", TYPES, "type_known"),
    one_of("priority", PRIORITIES, "priority_known"),
)
Index("ix_tickets_created", tickets.c.created_at, tickets.c.id)
Index("ix_tickets_updated_id", tickets.c.updated_at, tickets.c.id)  # ?sort=updated_at (0014)
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
    one_of("visibility", VISIBILITIES, "visibility_known"),
)
Index("ix_ticket_comments_ticket", ticket_comments.c.ticket_id, ticket_comments.c.id)
Index(  # ?sort=created_at of a ticket's comments (0014)
    "ix_ticket_comments_ticket_created",
    ticket_comments.c.ticket_id,
    ticket_comments.c.created_at,
    ticket_comments.c.id,
)
Index(
    "ix_ticket_comments_body_trgm",
    ticket_comments.c.body,
    postgresql_using="gin",
    postgresql_ops={"body": "gin_trgm_ops"},
)

#: The sorts of GET /v1/tickets: newest first unless asked otherwise.
TICKET_SORTS = Sorts(
    (SortKey("created_at", "datetime"), SortKey("updated_at", "datetime")), default="-created_at"
)
#: The sorts of a ticket's comments: oldest first (reading order), as it always was.
COMMENT_SORTS = Sorts((SortKey("created_at", "datetime"),), default="created_at", id_kind="int")

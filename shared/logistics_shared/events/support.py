"""Events produced by the support service."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .registry import REGISTRY

#: Every event in this module is emitted by the support service (its exchange).
PRODUCER = "support"

_STATUS = validate.OneOf(("new", "open", "pending", "solved", "closed"))


class _Ticket(Schema):
    ticket_id = fields.UUID(required=True)
    number = fields.Integer(required=True, strict=True)


@REGISTRY.register("ticket.created", 1, producer=PRODUCER)
class TicketCreated(_Ticket):
    subject = fields.String(required=True)
    type = fields.String(required=True)
    priority = fields.String(required=True)
    status = fields.String(required=True, validate=_STATUS)
    queue = fields.String(required=True)
    assignee = fields.String(allow_none=True, load_default=None)
    shipment_id = fields.UUID(allow_none=True, load_default=None)


@REGISTRY.register("ticket.status_changed", 1, producer=PRODUCER)
class TicketStatusChanged(_Ticket):
    previous_status = fields.String(required=True, validate=_STATUS)
    status = fields.String(required=True, validate=_STATUS)


@REGISTRY.register("ticket.assigned", 1, producer=PRODUCER)
class TicketAssigned(_Ticket):
    previous_assignee = fields.String(allow_none=True, load_default=None)
    assignee = fields.String(allow_none=True, load_default=None)


@REGISTRY.register("ticket.sla_breached", 1, producer=PRODUCER)
class TicketSlaBreached(_Ticket):
    kind = fields.String(required=True, validate=validate.OneOf(("first_response", "resolution")))
    priority = fields.String(required=True)
    assignee = fields.String(allow_none=True, load_default=None)
    breached_at = fields.AwareDateTime(required=True)

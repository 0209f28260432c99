"""REST schemas of tickets and their comments."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from logistics_shared.schemas import (
    Code,
    PageQuerySchema,
    PatchSchema,
    StrictSchema,
    Text,
    UtcDateTime,
    page_schema,
)

from ..models import COMMENT_SORTS, PRIORITIES, STATUSES, TICKET_SORTS, TYPES, VISIBILITIES


class TicketCreateSchema(StrictSchema):
    subject = Text(200, required=True)
    description = Text(10_000, required=True)
    type = fields.String(load_default="question", validate=validate.OneOf(TYPES))
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    queue = Code(load_default="general")
    tags = fields.List(Text(50), load_default=list, validate=validate.Length(max=20))
    assignee = Text(200, load_default=None, allow_none=True)
    shipment_id = fields.UUID(load_default=None, allow_none=True)
    order_reference = Text(100, load_default=None, allow_none=True)
    tracking_number = Text(32, load_default=None, allow_none=True)


class TicketUpdateSchema(PatchSchema):
    subject = Text(200)
    description = Text(10_000)
    type = fields.String(validate=validate.OneOf(TYPES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    status = fields.String(validate=validate.OneOf(STATUSES))
    queue = Code()
    tags = fields.List(Text(50), validate=validate.Length(max=20))
    assignee = Text(200, allow_none=True)


class TicketSchema(Schema):
    id = fields.String()
    number = fields.Integer()
    subject = fields.String()
    description = fields.String()
    type = fields.String()
    priority = fields.String()
    status = fields.String()
    queue = fields.String()
    tags = fields.List(fields.String())
    assignee = fields.String(allow_none=True)
    shipment_id = fields.String(allow_none=True)
    order_reference = fields.String(allow_none=True)
    tracking_number = fields.String(allow_none=True)
    version = fields.Integer()
    created_by = fields.String()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    first_response_due = UtcDateTime(allow_none=True)
    resolution_due = UtcDateTime(allow_none=True)
    first_responded_at = UtcDateTime(allow_none=True)
    sla_state = fields.String()


class TicketQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assignee = Text(200)
    queue = Code()
    shipment_id = fields.UUID()
    q = Text(200, min_length=2)
    sla = fields.String(validate=validate.OneOf(("breached", "breaching_soon", "paused", "ok")))
    sort = TICKET_SORTS.field()


TicketPageSchema = page_schema(TicketSchema, "TicketPageSchema")


class CommentCreateSchema(StrictSchema):
    body = Text(10_000, required=True)
    visibility = fields.String(load_default="public", validate=validate.OneOf(VISIBILITIES))


class CommentSchema(Schema):
    id = fields.Integer()
    ticket_id = fields.String()
    body = fields.String()
    visibility = fields.String()
    author = fields.String()
    created_at = UtcDateTime()


class CommentQuerySchema(PageQuerySchema):
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))
    sort = COMMENT_SORTS.field()


CommentPageSchema = page_schema(CommentSchema, "CommentPageSchema")

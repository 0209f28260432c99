"""REST schemas of the shipment read model and the lookup by what a customer quotes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from logistics_shared.schemas import (
    Code,
    PageQuerySchema,
    Text,
    UtcDateTime,
    UtcDateTimeIn,
    page_schema,
)

from ..models import SHIPMENT_STATUSES, SHIPMENT_VIEW_SORTS


class TrackingSchema(Schema):
    status = fields.String()
    description = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    occurred_at = fields.String()
    source = fields.String()


class LinkedTicketSchema(Schema):
    id = fields.String()
    number = fields.Integer()
    status = fields.String()


class ShipmentViewSchema(Schema):
    shipment_id = fields.String()
    reference = fields.String(allow_none=True)
    warehouse = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    tracking_number = fields.String(allow_none=True)
    tracking = fields.List(fields.Nested(TrackingSchema))
    updated_at = UtcDateTime()
    tickets = fields.List(fields.Nested(LinkedTicketSchema))


class ShipmentListQuerySchema(PageQuerySchema):
    """The read model's shipments: by what a customer quotes (tracking number, reference),
    by status or warehouse, and by when they last changed (``since <= updated_at < until``)."""

    tracking_number = Text(32)
    reference = Text(100)
    status = fields.String(validate=validate.OneOf(SHIPMENT_STATUSES))
    warehouse = Code()
    since = UtcDateTimeIn(metadata={"description": "Last changed at or after (the read model's updated_at)."})
    until = UtcDateTimeIn(metadata={"description": "Last changed before."})
    sort = SHIPMENT_VIEW_SORTS.field()


ShipmentPageSchema = page_schema(ShipmentViewSchema, "ShipmentPageSchema")

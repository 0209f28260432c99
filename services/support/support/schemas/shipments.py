"""REST schemas of the shipment read model and the lookup by what a customer quotes."""

from __future__ import annotations

from marshmallow import Schema, fields

from logistics_shared.schemas import StrictSchema, Text, UtcDateTime


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


class ShipmentLookupSchema(StrictSchema):
    """Find shipments by what a customer quotes: a tracking number or a reference
    (neither: the most recently updated ones)."""

    tracking_number = Text(32)
    reference = Text(100)


class ShipmentLookupResultSchema(Schema):
    items = fields.List(fields.Nested(ShipmentViewSchema))

"""REST schemas of shipments: creating, cancelling, reading and listing them."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from logistics_shared.schemas import (
    MAX_MILLIMETRES,
    AddressOutSchema,
    AddressSchema,
    Code,
    PageQuerySchema,
    Quantity,
    Sku,
    StrictInteger,
    StrictSchema,
    Text,
    UtcDateTime,
    UtcDateTimeIn,
    page_schema,
)

from ..models import STATUSES
from .tracking import TrackingEventSchema


class LineInSchema(StrictSchema):
    sku = Sku(required=True)
    quantity = Quantity(required=True)


class ParcelInSchema(StrictSchema):
    # A parcel weighs something, and no carrier takes more than 70 kg.
    weight_g = StrictInteger(required=True, validate=validate.Range(min=1, max=70_000))
    # ... and has three sides of at least a millimetre (a 0 would zero its dimensional weight).
    length_mm = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_MILLIMETRES))
    width_mm = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_MILLIMETRES))
    height_mm = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_MILLIMETRES))


class ShipmentCreateSchema(StrictSchema):
    reference = Text(100, required=True)
    warehouse = Code(required=True)
    ship_to = fields.Nested(AddressSchema, required=True)
    lines = fields.List(fields.Nested(LineInSchema), required=True, validate=validate.Length(min=1, max=200))
    parcels = fields.List(
        fields.Nested(ParcelInSchema),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={
            "description": "Omitted or empty: one parcel derived from the catalogue when every "
            "line's item is known to shipping (weights summed, the largest length and width, "
            "the heights stacked); otherwise none until given."
        },
    )


class CancelSchema(StrictSchema):
    reason = Text(500, load_default=None, allow_none=True)


class LineSchema(Schema):
    sku = fields.String()
    quantity = fields.Integer()


class ParcelSchema(Schema):
    weight_g = fields.Integer()
    length_mm = fields.Integer()
    width_mm = fields.Integer()
    height_mm = fields.Integer()


class HistorySchema(Schema):
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    cause = fields.String()
    detail = fields.String(allow_none=True)
    at = UtcDateTime()


class ShipmentSummarySchema(Schema):
    id = fields.String()
    reference = fields.String()
    warehouse = fields.String()
    status = fields.String()
    hold_reason = fields.String(allow_none=True)
    reservation_id = fields.String(allow_none=True)
    ship_to = fields.Nested(AddressOutSchema)
    lines = fields.List(fields.Nested(LineSchema))
    version = fields.Integer()
    created_by = fields.String()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class LabelSummarySchema(Schema):
    carrier = fields.String()
    service = fields.String()
    tracking_number = fields.String()
    format = fields.String()


class ShipmentSchema(ShipmentSummarySchema):
    label = fields.Nested(LabelSummarySchema, allow_none=True)
    parcels = fields.List(fields.Nested(ParcelSchema))
    history = fields.List(fields.Nested(HistorySchema))
    tracking = fields.List(fields.Nested(TrackingEventSchema))


class ShipmentQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    warehouse = Code()
    reference = Text(100)
    since = UtcDateTimeIn()
    until = UtcDateTimeIn()


ShipmentPageSchema = page_schema(ShipmentSummarySchema, "ShipmentPageSchema")

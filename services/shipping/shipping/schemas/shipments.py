"""REST schemas of shipments: creating, cancelling, reading and listing them."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from logistics_shared.errors import PROBLEM_BASE, Conflict
from logistics_shared.schemas import (
    MAX_MILLIMETRES,
    AddressOutSchema,
    AddressSchema,
    Code,
    ConflictProblemSchema,
    PageQuerySchema,
    Quantity,
    Sku,
    StrictBoolean,
    StrictInteger,
    StrictSchema,
    Text,
    UtcDateTime,
    UtcDateTimeIn,
    page_schema,
)

from ..domain.references import DuplicateReference
from ..models import SHIPMENT_SORTS, STATUSES
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
    allow_duplicate_reference = StrictBoolean(
        load_default=False,
        metadata={
            "description": (
                "true: create the shipment even if a shipment of this warehouse that is not "
                "cancelled has the same reference (otherwise a 409 names that one)"
            )
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
    q = Text(
        100,
        min_length=2,
        metadata={"description": "Shipments whose reference, recipient name or postal code contains it"},
    )
    sort = SHIPMENT_SORTS.field()


ShipmentPageSchema = page_schema(ShipmentSummarySchema, "ShipmentPageSchema")


# --- problems: the extension members of a create's 409 -------------------------------
class ExistingShipmentSchema(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    href = fields.String(required=True, metadata={"description": "Its path: GET it there"})
    reference = fields.String(required=True)
    warehouse = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    created_at = UtcDateTime(required=True)


DUPLICATE_REFERENCE = PROBLEM_BASE + DuplicateReference.slug
CONFLICT = PROBLEM_BASE + Conflict.slug


class ShipmentCreateConflictProblemSchema(ConflictProblemSchema):
    """409 of a create: a live shipment of the warehouse has the reference (``type``
    ``urn:logistics:problem:duplicate-shipment-reference``, with ``existing_shipment``),
    or a request with the same ``Idempotency-Key`` is still running (``type``
    ``urn:logistics:problem:conflict``)."""

    type = fields.String(required=True, validate=validate.OneOf((DUPLICATE_REFERENCE, CONFLICT)))
    existing_shipment = fields.Nested(
        ExistingShipmentSchema,
        metadata={"description": "The shipment that already has the reference (the oldest, if several)"},
    )

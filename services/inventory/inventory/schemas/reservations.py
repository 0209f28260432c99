"""REST schemas of reservations (stock held for a reference, all lines or none)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from logistics_shared.schemas import (
    Code,
    PageQuerySchema,
    Quantity,
    Sku,
    StrictSchema,
    Text,
    UtcDateTime,
    UtcDateTimeIn,
    page_schema,
)

from ..models import RESERVATION_SORTS, RESERVATION_STATES
from .stock import StockConflictProblemSchema


class ReservationLineInSchema(StrictSchema):
    sku = Sku(required=True)
    quantity = Quantity(required=True)


class ReservationCreateSchema(StrictSchema):
    warehouse = Code(required=True)
    reference = Text(100, required=True)
    lines = fields.List(
        fields.Nested(ReservationLineInSchema),
        required=True,
        validate=validate.Length(min=1, max=200),
    )
    expires_at = UtcDateTimeIn(load_default=None, allow_none=True)


class ReservationLineSchema(Schema):
    sku = fields.String()
    quantity = fields.Integer()


class ReservationSchema(Schema):
    id = fields.String()
    warehouse = fields.String()
    reference = fields.String()
    status = fields.String()
    expires_at = UtcDateTime(allow_none=True)
    created_by = fields.String()
    created_at = UtcDateTime()
    closed_at = UtcDateTime(allow_none=True)
    lines = fields.List(fields.Nested(ReservationLineSchema))


class ReservationQuerySchema(PageQuerySchema):
    warehouse = Code()
    reference = Text(100)
    status = fields.String(validate=validate.OneOf(RESERVATION_STATES))
    sort = RESERVATION_SORTS.field()


ReservationPageSchema = page_schema(ReservationSchema, "ReservationPageSchema")


# --- problems: the extension members of a reservation's 409 -------------------------
class ShortageSchema(Schema):
    sku = fields.String(required=True)
    requested = fields.Integer(required=True)
    available = fields.Integer(required=True)


class ReservationConflictProblemSchema(StockConflictProblemSchema):
    """409 of a reservation: the short lines (all or nothing), or its current state."""

    shortages = fields.List(fields.Nested(ShortageSchema))
    reservation_status = fields.String(validate=validate.OneOf(RESERVATION_STATES))

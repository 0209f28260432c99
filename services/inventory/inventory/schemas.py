"""Inventory's REST schemas, built from the shared common types.

Input schemas derive from ``StrictSchema`` (unknown fields are 422 at every
depth); output schemas are allow-lists: only the fields named here leave.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from logistics_shared.events.inventory import REASONS
from logistics_shared.schemas import (
    AddressOutSchema,
    AddressSchema,
    Code,
    ConflictProblemSchema,
    Count,
    Grams,
    Millimetres,
    PageQuerySchema,
    PatchSchema,
    Quantity,
    SignedQuantity,
    Sku,
    StrictSchema,
    Text,
    UtcDateTime,
    UtcDateTimeIn,
    page_schema,
)

MOVEMENT_KINDS = ("receipt", "adjustment", "transfer_out", "transfer_in", "issue")
RESERVATION_STATES = ("active", "consumed", "released", "expired")


# --- items -----------------------------------------------------------------
class ItemCreateSchema(StrictSchema):
    sku = Sku(required=True)
    name = Text(200, required=True)
    unit_weight_g = Grams(required=True)
    length_mm = Millimetres(required=True)
    width_mm = Millimetres(required=True)
    height_mm = Millimetres(required=True)
    reorder_point = Count(load_default=0)


class ItemUpdateSchema(PatchSchema):
    name = Text(200)
    unit_weight_g = Grams()
    length_mm = Millimetres()
    width_mm = Millimetres()
    height_mm = Millimetres()
    reorder_point = Count()


class ItemSchema(Schema):
    sku = fields.String()
    name = fields.String()
    unit_weight_g = fields.Integer()
    length_mm = fields.Integer()
    width_mm = fields.Integer()
    height_mm = fields.Integer()
    reorder_point = fields.Integer()
    version = fields.Integer()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class ItemQuerySchema(PageQuerySchema):
    sku_prefix = Text(64)


# --- warehouses and locations ----------------------------------------------
class WarehouseCreateSchema(StrictSchema):
    code = Code(required=True)
    name = Text(200, required=True)
    address = fields.Nested(AddressSchema, required=True)


class WarehouseSchema(Schema):
    code = fields.String()
    name = fields.String()
    address = fields.Nested(AddressOutSchema)
    created_at = UtcDateTime()


class LocationCreateSchema(StrictSchema):
    code = Code(required=True)
    description = Text(200, load_default=None, allow_none=True)


class LocationSchema(Schema):
    warehouse = fields.String()
    code = fields.String()
    description = fields.String(allow_none=True)
    created_at = UtcDateTime()


# --- stock, receipts, adjustments, transfers ---------------------------------
class StockLevelSchema(Schema):
    sku = fields.String()
    warehouse = fields.String()
    on_hand = fields.Integer()
    reserved = fields.Integer()
    available = fields.Integer()


class StockQuerySchema(PageQuerySchema):
    sku = Sku()
    warehouse = Code()


class ReceiptCreateSchema(StrictSchema):
    warehouse = Code(required=True)
    sku = Sku(required=True)
    quantity = Quantity(required=True)
    location = Code(load_default=None, allow_none=True)
    reference = Text(100, load_default=None, allow_none=True)


class ReceiptSchema(Schema):
    movement_id = fields.Integer()
    stock = fields.Nested(StockLevelSchema)


class AdjustmentCreateSchema(StrictSchema):
    warehouse = Code(required=True)
    sku = Sku(required=True)
    counted = Count(load_default=None)
    delta = SignedQuantity(load_default=None)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS))
    note = Text(500, load_default=None, allow_none=True)
    location = Code(load_default=None, allow_none=True)

    # The document says the same: exactly one of the two, as a number.
    __openapi__: ClassVar[dict[str, Any]] = {
        "oneOf": [
            {
                "required": ["counted"],
                "properties": {"counted": {"type": "integer"}, "delta": {"type": "null"}},
            },
            {
                "required": ["delta"],
                "properties": {"delta": {"type": "integer"}, "counted": {"type": "null"}},
            },
        ]
    }

    @validates_schema
    def _one_of(self, data: dict, **_kw: object) -> None:
        if (data.get("counted") is None) == (data.get("delta") is None):
            raise ValidationError("Send exactly one of counted or delta.", field_name="counted")


class AdjustmentSchema(Schema):
    movement_id = fields.Integer(allow_none=True)
    delta = fields.Integer()
    stock = fields.Nested(StockLevelSchema)


class TransferCreateSchema(StrictSchema):
    from_warehouse = Code(required=True)
    to_warehouse = Code(required=True)
    sku = Sku(required=True)
    quantity = Quantity(required=True)
    reference = Text(100, load_default=None, allow_none=True)


class TransferSchema(Schema):
    out_movement_id = fields.Integer()
    in_movement_id = fields.Integer()
    from_stock = fields.Nested(StockLevelSchema)
    to_stock = fields.Nested(StockLevelSchema)


class MovementSchema(Schema):
    id = fields.Integer()
    sku = fields.String()
    warehouse = fields.String()
    location = fields.String(allow_none=True)
    kind = fields.String()
    quantity = fields.Integer()
    reason = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    reservation_id = fields.String(allow_none=True)
    actor = fields.String()
    created_at = UtcDateTime()


class MovementQuerySchema(PageQuerySchema):
    sku = Sku()
    warehouse = Code()
    kind = fields.String(validate=validate.OneOf(MOVEMENT_KINDS))
    since = UtcDateTimeIn()
    until = UtcDateTimeIn()


# --- reservations ------------------------------------------------------------
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


ItemPageSchema = page_schema(ItemSchema, "ItemPageSchema")
WarehousePageSchema = page_schema(WarehouseSchema, "WarehousePageSchema")
LocationPageSchema = page_schema(LocationSchema, "LocationPageSchema")
StockPageSchema = page_schema(StockLevelSchema, "StockPageSchema")
MovementPageSchema = page_schema(MovementSchema, "MovementPageSchema")
ReservationPageSchema = page_schema(ReservationSchema, "ReservationPageSchema")


# --- problems: the extension members of inventory's 409s --------------------------
class ShortageSchema(Schema):
    sku = fields.String(required=True)
    requested = fields.Integer(required=True)
    available = fields.Integer(required=True)


class StockConflictProblemSchema(ConflictProblemSchema):
    """409 of a stock change: what the level holds, and what was asked."""

    on_hand = fields.Integer()
    reserved = fields.Integer()
    requested = fields.Integer()
    available = fields.Integer()
    maximum = fields.Integer(metadata={"description": "The most one stock level may hold"})


class ReservationConflictProblemSchema(StockConflictProblemSchema):
    """409 of a reservation: the short lines (all or nothing), or its current state."""

    shortages = fields.List(fields.Nested(ShortageSchema))
    reservation_status = fields.String(validate=validate.OneOf(RESERVATION_STATES))

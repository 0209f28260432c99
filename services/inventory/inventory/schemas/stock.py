"""REST schemas of stock levels, receipts, adjustments, transfers and the movement ledger."""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from logistics_shared.events.inventory import REASONS
from logistics_shared.schemas import (
    Code,
    ConflictProblemSchema,
    Count,
    PageQuerySchema,
    Quantity,
    SignedQuantity,
    Sku,
    StrictSchema,
    Text,
    UtcDateTime,
    UtcDateTimeIn,
    page_schema,
)

from ..models import MOVEMENT_KINDS, MOVEMENT_SORTS, STOCK_SORTS


class StockLevelSchema(Schema):
    sku = fields.String()
    warehouse = fields.String()
    on_hand = fields.Integer()
    reserved = fields.Integer()
    available = fields.Integer()


class StockQuerySchema(PageQuerySchema):
    sku = Sku()
    warehouse = Code()
    sort = STOCK_SORTS.field()


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
    sort = MOVEMENT_SORTS.field()


StockPageSchema = page_schema(StockLevelSchema, "StockPageSchema")
MovementPageSchema = page_schema(MovementSchema, "MovementPageSchema")


# --- problems: the extension members of a stock change's 409 -----------------------
class StockConflictProblemSchema(ConflictProblemSchema):
    """409 of a stock change: what the level holds, and what was asked."""

    on_hand = fields.Integer()
    reserved = fields.Integer()
    requested = fields.Integer()
    available = fields.Integer()
    maximum = fields.Integer(metadata={"description": "The most one stock level may hold"})

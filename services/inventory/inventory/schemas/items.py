"""REST schemas of items (the catalogue of SKUs)."""

from __future__ import annotations

from marshmallow import Schema, fields

from logistics_shared.schemas import (
    Count,
    Grams,
    Millimetres,
    PageQuerySchema,
    PatchSchema,
    Sku,
    StrictSchema,
    Text,
    UtcDateTime,
    page_schema,
)

from ..models import ITEM_SORTS


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
    q = Text(
        200,
        min_length=2,
        metadata={"description": "Items whose name contains it or whose SKU starts with it (any case)"},
    )
    sort = ITEM_SORTS.field()


ItemPageSchema = page_schema(ItemSchema, "ItemPageSchema")

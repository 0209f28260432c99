"""REST schemas of warehouses and their locations."""

from __future__ import annotations

from marshmallow import Schema, fields

from logistics_shared.schemas import (
    AddressOutSchema,
    AddressSchema,
    Code,
    PageQuerySchema,
    PatchSchema,
    StrictSchema,
    Text,
    UtcDateTime,
    page_schema,
)

from ..models import LOCATION_SORTS, WAREHOUSE_SORTS


class WarehouseQuerySchema(PageQuerySchema):
    sort = WAREHOUSE_SORTS.field()


class LocationQuerySchema(PageQuerySchema):
    sort = LOCATION_SORTS.field()


class WarehouseCreateSchema(StrictSchema):
    code = Code(required=True)
    name = Text(200, required=True)
    address = fields.Nested(AddressSchema, required=True)


class WarehouseUpdateSchema(PatchSchema):
    name = Text(200)
    #: The whole address, replaced as one (its ``phone`` is the sender's phone on labels).
    address = fields.Nested(AddressSchema)


class WarehouseSchema(Schema):
    code = fields.String()
    name = fields.String()
    address = fields.Nested(AddressOutSchema)
    version = fields.Integer()
    created_at = UtcDateTime()
    updated_at = UtcDateTime(allow_none=True)


class LocationCreateSchema(StrictSchema):
    code = Code(required=True)
    description = Text(200, load_default=None, allow_none=True)


class LocationSchema(Schema):
    warehouse = fields.String()
    code = fields.String()
    description = fields.String(allow_none=True)
    created_at = UtcDateTime()


WarehousePageSchema = page_schema(WarehouseSchema, "WarehousePageSchema")
LocationPageSchema = page_schema(LocationSchema, "LocationPageSchema")

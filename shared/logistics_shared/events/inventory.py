"""Events produced by the inventory service."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from ..schemas import (
    AddressSchema,
    Code,
    Count,
    Grams,
    Millimetres,
    Quantity,
    SignedQuantity,
    Sku,
    StrictInteger,
)
from .registry import REGISTRY

#: Every event in this module is emitted by the inventory service (its exchange).
PRODUCER = "inventory"

REASONS = ("count", "damage", "loss", "found", "correction", "expiry", "other")


class StockLevelSchema(Schema):
    sku = Sku(required=True)
    warehouse = Code(required=True)
    on_hand = Count(required=True)
    reserved = Count(required=True)
    available = Count(required=True)


class _Movement(StockLevelSchema):
    movement_id = StrictInteger(required=True)
    location = Code(allow_none=True, load_default=None)
    reference = fields.String(allow_none=True, load_default=None)


@REGISTRY.register("stock.received", 1, producer=PRODUCER)
class StockReceived(_Movement):
    quantity = Quantity(required=True)


@REGISTRY.register("stock.adjusted", 1, producer=PRODUCER)
class StockAdjusted(_Movement):
    delta = SignedQuantity(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS))
    note = fields.String(allow_none=True, load_default=None)


@REGISTRY.register("stock.transferred", 1, producer=PRODUCER)
class StockTransferred(Schema):
    sku = Sku(required=True)
    from_warehouse = Code(required=True)
    to_warehouse = Code(required=True)
    quantity = Quantity(required=True)
    reference = fields.String(allow_none=True, load_default=None)
    out_movement_id = StrictInteger(required=True)
    in_movement_id = StrictInteger(required=True)


class ReservationLineSchema(Schema):
    sku = Sku(required=True)
    quantity = Quantity(required=True)


class _Reservation(Schema):
    reservation_id = fields.UUID(required=True)
    warehouse = Code(required=True)
    reference = fields.String(required=True)
    lines = fields.List(fields.Nested(ReservationLineSchema), required=True)


@REGISTRY.register("stock.reserved", 1, producer=PRODUCER)
class StockReserved(_Reservation):
    expires_at = fields.AwareDateTime(allow_none=True, load_default=None)


@REGISTRY.register("stock.released", 1, producer=PRODUCER)
class StockReleased(_Reservation):
    reason = fields.String(required=True, validate=validate.OneOf(("released", "expired")))


@REGISTRY.register("stock.issued", 1, producer=PRODUCER)
class StockIssued(_Reservation):
    movement_ids = fields.List(StrictInteger(), required=True)


@REGISTRY.register("stock.low", 1, producer=PRODUCER)
class StockLow(StockLevelSchema):
    reorder_point = Count(required=True)


class ShortageSchema(Schema):
    sku = Sku(required=True)
    requested = Quantity(required=True)
    available = StrictInteger(required=True)


@REGISTRY.register("stock.reservation_failed", 1, producer=PRODUCER)
class StockReservationFailed(Schema):
    reference = fields.String(required=True)
    warehouse = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(("shortage", "invalid_request")))
    detail = fields.String(required=True)
    shortages = fields.List(fields.Nested(ShortageSchema), load_default=list)


# -- the catalogue: what other services keep a read model of ------------------------------
class _Item(Schema):
    sku = Sku(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    unit_weight_g = Grams(required=True)
    length_mm = Millimetres(required=True)
    width_mm = Millimetres(required=True)
    height_mm = Millimetres(required=True)
    #: The item's version after the change (it grows with every update): a consumer keeps the
    #: highest it has seen, so an older ``item.updated`` delivered late changes nothing.
    version = StrictInteger(required=True, validate=validate.Range(min=1))


@REGISTRY.register("item.created", 1, producer=PRODUCER)
class ItemCreated(_Item):
    pass


@REGISTRY.register("item.updated", 1, producer=PRODUCER)
class ItemUpdated(_Item):
    pass


class EventAddressSchema(AddressSchema):
    """The shared address (the same fields and rules as a shipment's ``ship_to``); a
    consumer ignores fields it does not know, as it does at the top level."""

    class Meta:
        unknown = EXCLUDE


class _Warehouse(Schema):
    code = Code(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    #: The postal address; its optional ``phone`` is the sender's phone on labels.
    address = fields.Nested(EventAddressSchema, required=True)
    #: As for items: the warehouse's version after the change.
    version = StrictInteger(required=True, validate=validate.Range(min=1))


@REGISTRY.register("warehouse.created", 1, producer=PRODUCER)
class WarehouseCreated(_Warehouse):
    pass


@REGISTRY.register("warehouse.updated", 1, producer=PRODUCER)
class WarehouseUpdated(_Warehouse):
    pass

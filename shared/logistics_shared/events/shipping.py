"""Events produced by the shipping service (the saga's requests to inventory)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..schemas import Code
from .inventory import ReservationLineSchema
from .registry import REGISTRY

#: Every event in this module is emitted by the shipping service (its exchange).
PRODUCER = "shipping"


@REGISTRY.register("shipment.requested", 1, producer=PRODUCER)
class ShipmentRequested(Schema):
    shipment_id = fields.UUID(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=100))
    warehouse = Code(required=True)
    lines = fields.List(fields.Nested(ReservationLineSchema), required=True, validate=validate.Length(min=1))
    hold_until = fields.AwareDateTime(allow_none=True, load_default=None)
    version = fields.Integer(allow_none=True, load_default=None)


@REGISTRY.register("shipment.cancelled", 1, producer=PRODUCER)
class ShipmentCancelled(Schema):
    shipment_id = fields.UUID(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=100))
    warehouse = Code(required=True)
    reason = fields.String(allow_none=True, load_default=None)
    version = fields.Integer(allow_none=True, load_default=None)


class _ShipmentState(Schema):
    shipment_id = fields.UUID(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=100))
    warehouse = Code(required=True)
    status = fields.String(required=True)
    #: The shipment's version after the change (it grows with every transition): consumers
    #: order events by it, not by timestamps from replicas whose clocks may disagree.
    #: Optional, so events written before it existed still load.
    version = fields.Integer(allow_none=True, load_default=None)


@REGISTRY.register("shipment.ready", 1, producer=PRODUCER)
class ShipmentReady(_ShipmentState):
    reservation_id = fields.UUID(required=True)


@REGISTRY.register("shipment.on_hold", 1, producer=PRODUCER)
class ShipmentOnHold(_ShipmentState):
    reason = fields.String(required=True)
    detail = fields.String(required=True)
    shortages = fields.List(fields.Dict(), load_default=list)


class TrackingSchema(Schema):
    status = fields.String(required=True)
    description = fields.String(allow_none=True, load_default=None)
    location = fields.String(allow_none=True, load_default=None)
    occurred_at = fields.AwareDateTime(required=True)
    source = fields.String(required=True)


class _Tracked(_ShipmentState):
    previous_status = fields.String(required=True)
    tracking = fields.Nested(TrackingSchema, required=True)


@REGISTRY.register("shipment.status_changed", 1, producer=PRODUCER)
class ShipmentStatusChanged(_Tracked):
    pass


@REGISTRY.register("shipment.tracked", 1, producer=PRODUCER)
class ShipmentTracked(_ShipmentState):
    """A scan that did not move the shipment (another hub, a late or repeated status):
    ``status`` is the shipment's current one, ``tracking`` the scan."""

    tracking = fields.Nested(TrackingSchema, required=True)


@REGISTRY.register("shipment.exception", 1, producer=PRODUCER)
class ShipmentException(_Tracked):
    pass


@REGISTRY.register("shipment.delivery_failed", 1, producer=PRODUCER)
class ShipmentDeliveryFailed(_Tracked):
    pass


@REGISTRY.register("shipment.delivered", 1, producer=PRODUCER)
class ShipmentDelivered(_Tracked):
    pass


@REGISTRY.register("shipment.label_purchased", 1, producer=PRODUCER)
class ShipmentLabelPurchased(_ShipmentState):
    carrier = Code(required=True)
    service = Code(required=True)
    tracking_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    # The stock held for the shipment, which inventory now issues (it finds it by shipment too).
    reservation_id = fields.UUID(required=True, allow_none=True)

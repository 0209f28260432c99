"""Tracking schemas: staff-recorded events and carrier webhook payloads."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from logistics_shared.schemas import StrictSchema, Text, UtcDateTime, UtcDateTimeIn

from ..models import TRACKING_STATUSES


class TrackingEventInSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(TRACKING_STATUSES))
    description = Text(500, load_default=None, allow_none=True)
    location = Text(200, load_default=None, allow_none=True)
    occurred_at = UtcDateTimeIn(load_default=None, allow_none=True)


class TrackingEventSchema(Schema):
    status = fields.String()
    description = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    occurred_at = UtcDateTime()
    source = fields.String()


class WebhookEventSchema(StrictSchema):
    """One tracking event as a carrier posts it."""

    event_id = Text(100, required=True)
    tracking_number = Text(32, required=True)
    status = fields.String(required=True, validate=validate.OneOf(TRACKING_STATUSES))
    description = Text(500, load_default=None, allow_none=True)
    location = Text(200, load_default=None, allow_none=True)
    occurred_at = UtcDateTimeIn(required=True)


class WebhookResultSchema(Schema):
    result = fields.String()
    shipment_status = fields.String()


class TrackingLookupSchema(Schema):
    tracking_number = fields.String()
    carrier = fields.String()
    service = fields.String()
    shipment_id = fields.String()
    reference = fields.String()
    warehouse = fields.String()
    status = fields.String()
    events = fields.List(fields.Nested(TrackingEventSchema))

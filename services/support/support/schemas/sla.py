"""REST schemas of SLA policies (targets per priority)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from logistics_shared.schemas import StrictInteger, StrictSchema, UtcDateTime

#: One year: a longer target is a typo, not a policy.
MAX_TARGET_MINUTES = 366 * 24 * 60


class SlaPolicyUpdateSchema(StrictSchema):
    first_response_minutes = StrictInteger(
        required=True, validate=validate.Range(min=1, max=MAX_TARGET_MINUTES)
    )
    resolution_minutes = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_TARGET_MINUTES))

    @validates_schema
    def first_response_comes_first(self, data: dict[str, Any], **kwargs: Any) -> None:
        first, resolution = data.get("first_response_minutes"), data.get("resolution_minutes")
        if first is not None and resolution is not None and first > resolution:
            raise ValidationError(
                "must not be shorter than first_response_minutes", field_name="resolution_minutes"
            )


class SlaPolicySchema(Schema):
    priority = fields.String()
    first_response_minutes = fields.Integer()
    resolution_minutes = fields.Integer()
    version = fields.Integer()
    updated_by = fields.String()
    updated_at = UtcDateTime()

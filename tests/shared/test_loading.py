"""The compiled query loaders give exactly what ``Schema.load`` gives, for every query schema
of every service: the same dict for valid input, the same ValidationError messages for invalid
input (missing, malformed, out of range, unknown names), on generated query strings.
"""

from __future__ import annotations

import random

import pytest
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate, validates

from logistics_shared.schemas import StrictSchema
from logistics_shared.web.loading import compile_load

#: Values a query string may carry, good and bad for every kind of field.
VALUES = [
    "",
    " ",
    "a",
    "MUG-01",
    "AMS",
    "ams",
    "0",
    "1",
    "50",
    "200",
    "201",
    "-1",
    "1.5",
    "x" * 600,
    "YWJj",
    "not a cursor!",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00+02:00",
    "2026-13-01",
    "true",
    "false",
    "00000000-0000-0000-0000-000000000000",
    "urgent",
    "open,closed",
]


def query_schemas(registry) -> dict[str, Schema]:
    found = {}
    for item in registry.introspector.get_category("views") or []:
        meta = getattr(item["introspectable"]["callable"], "__api__", None)
        if meta is not None and meta.query is not None:
            found[f"{meta.method} {meta.route}"] = meta.query()
    return found


def candidates(field: fields.Field) -> list[str]:
    """VALUES plus the field's own choices (OneOf), so valid enumerations are tried too."""
    extra = []
    validators = list(field.validators) + list(getattr(getattr(field, "inner", None), "validators", []))
    for validator in validators:
        if isinstance(validator, validate.OneOf):
            extra.extend(str(choice) for choice in validator.choices)
    return VALUES + extra


def outcome(load, data):
    try:
        return ("ok", load(dict(data)))
    except ValidationError as exc:
        return ("error", exc.messages)


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_compiled_load_equals_marshmallow(service_client, service):
    schemas = query_schemas(service_client(service).registry)
    assert schemas, "every service has list endpoints"
    rng = random.Random(12)
    compiled_any = False
    for where, schema in schemas.items():
        compiled = compile_load(schema)
        compiled_any |= compiled is not schema.load
        names = [field.data_key or name for name, field in schema.load_fields.items()]
        per_name = {field.data_key or name: candidates(field) for name, field in schema.load_fields.items()}
        cases = [{}]
        for _ in range(300):
            data = {name: rng.choice(per_name[name]) for name in names if rng.random() < 0.6}
            if rng.random() < 0.1:
                data["unknown_name"] = "1"
            cases.append(data)
        for data in cases:
            assert outcome(compiled, data) == outcome(schema.load, data), (where, data)
    assert compiled_any, "the query schemas are the plain kind the loop handles"


class Plain(StrictSchema):
    sku = fields.String(required=True, validate=validate.Length(max=5))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    since = fields.DateTime(load_default=None, data_key="from", attribute="since_at")


def test_a_plain_schema_is_compiled_and_loads_like_marshmallow():
    schema = Plain()
    load = compile_load(schema)
    assert load is not schema.load
    data = {"sku": "AB", "from": "2026-01-01T00:00:00+00:00"}
    assert load(data) == schema.load(data)
    assert set(load(data)) == {"sku", "limit", "since_at"}
    for bad in ({}, {"sku": "ABCDEFG", "limit": "0"}, {"sku": "A", "since": "x"}, {"sku": "A", "from": "x"}):
        assert outcome(load, bad) == outcome(schema.load, bad)
        assert outcome(load, bad)[0] == "error"


class WithHooks(StrictSchema):
    sku = fields.String()

    @pre_load
    def _upper(self, data, **_kw):
        return {k: v.upper() for k, v in data.items()}

    @post_load
    def _tag(self, data, **_kw):
        return {**data, "tagged": True}


class WithValidates(StrictSchema):
    sku = fields.String()

    @validates("sku")
    def _no_x(self, value, **_kw):
        if "x" in value:
            raise ValidationError("no x")


class Lenient(Schema):
    """Unknown names dropped, not refused."""

    class Meta:
        unknown = EXCLUDE

    sku = fields.String()


class Dotted(StrictSchema):
    sku = fields.String(attribute="item.sku")


@pytest.mark.parametrize("schema", [WithHooks(), WithValidates(), Lenient(), Dotted(), Plain(many=True)])
def test_what_the_loop_does_not_do_is_left_to_marshmallow(schema):
    assert compile_load(schema) == schema.load

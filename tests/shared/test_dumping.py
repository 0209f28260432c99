"""The compiled response dumpers give exactly what ``Schema.dump`` gives, for every
response schema of every service, on generated objects (valid values, ``None``,
missing keys, naive and aware datetimes, ISO strings, nested lists, non-dict objects).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import Schema, fields

from logistics_shared.schemas import UtcDateTime
from logistics_shared.web.dumping import compile_dump

MISSING = object()


def response_schemas(registry) -> dict[str, Schema]:
    found = {}
    for item in registry.introspector.get_category("views") or []:
        meta = getattr(item["introspectable"]["callable"], "__api__", None)
        if meta is not None and meta.response is not None:
            found[f"{meta.method} {meta.route}"] = meta.response(many=meta.many)
    return found


def value_for(field: fields.Field, rng: random.Random, depth: int = 0) -> Any:
    if rng.random() < 0.1:
        return None
    if isinstance(field, fields.Nested):
        schema = field.schema
        if schema.many or field.many:
            return [obj_for(schema, rng, depth + 1) for _ in range(rng.randint(0, 3))]
        return obj_for(schema, rng, depth + 1)
    if isinstance(field, fields.List):
        return [value_for(field.inner, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if isinstance(field, fields.DateTime):
        stamp = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
        kind = rng.randint(0, 3)
        if kind == 0:
            return stamp.replace(tzinfo=None)  # SQLite's naive UTC
        if kind == 1:
            return stamp.astimezone(timezone(timedelta(hours=2)))
        if kind == 2 and isinstance(field, UtcDateTime):
            return stamp.isoformat()  # from a JSON cache
        return stamp
    if isinstance(field, fields.Boolean):
        return rng.choice([True, False, 0, 1])
    if isinstance(field, fields.Integer):
        return rng.choice([0, 7, -3, 2**40, True, 3.0])
    if isinstance(field, fields.Number):
        return rng.choice([0, 1.5, -2])
    if isinstance(field, fields.UUID):
        return uuid.UUID(int=rng.getrandbits(128))
    if isinstance(field, fields.Dict):
        return {"a": rng.randint(0, 9)}
    return rng.choice(["x", "", "héllo", 42, b"bytes", uuid.UUID(int=rng.getrandbits(128))])


def obj_for(schema: Schema, rng: random.Random, depth: int = 0) -> Any:
    data = {}
    for name, field in schema.dump_fields.items():
        if rng.random() < 0.08:
            continue  # a missing key
        data[field.attribute or name] = value_for(field, rng, depth)
    data["unlisted"] = "never dumped"
    if rng.random() < 0.05:
        return SimpleNamespace(**data)  # not a dict: attribute access
    return data


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_compiled_dump_equals_marshmallow(service_client, service):
    schemas = response_schemas(service_client(service).registry)
    assert schemas, "no response schemas found"
    rng = random.Random(20261125)
    failures = []
    for endpoint, schema in sorted(schemas.items()):
        dump = compile_dump(schema)
        for _ in range(150):
            obj = (
                [obj_for(schema, rng) for _ in range(rng.randint(0, 3))]
                if schema.many
                else obj_for(schema, rng)
            )
            try:
                expected: Any = schema.dump(obj)
            except Exception as exc:  # the same input must fail the same way
                expected = type(exc)
            try:
                got: Any = dump(obj)
            except Exception as exc:
                got = type(exc)
            if got != expected or repr(got) != repr(expected):
                failures.append(f"{endpoint}: {obj!r}\n  marshmallow: {expected!r}\n  compiled:    {got!r}")
                break
    assert not failures, "\n".join(failures)


def test_fields_it_does_not_know_go_through_marshmallow():
    class Odd(Schema):
        method = fields.Method("shout")
        function = fields.Function(lambda obj: obj["name"][::-1])
        name = fields.String()
        dotted = fields.String(attribute="inner.value")
        default = fields.String(dump_default="d")
        renamed = fields.Integer(data_key="renamedKey")

        def shout(self, obj: Any) -> str:
            return obj["name"].upper()

    data = {"name": "abc", "inner": {"value": "deep"}, "renamed": 3}
    assert (
        compile_dump(Odd())(data)
        == Odd().dump(data)
        == {
            "method": "ABC",
            "function": "cba",
            "name": "abc",
            "dotted": "deep",
            "default": "d",
            "renamedKey": 3,
        }
    )


def test_hooks_custom_access_and_self_nesting_go_through_marshmallow():
    from marshmallow import post_dump

    class Line(Schema):
        n = fields.Integer()

        @post_dump(pass_collection=True)
        def count(self, data: Any, many: bool, **kwargs: Any) -> Any:
            return {"count": len(data), "lines": data} if many else data

    class Order(Schema):
        lines = fields.Nested(Line, many=True)
        one = fields.Nested(Line)

    class Loud(Schema):
        name = fields.String()

        def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
            return str(super().get_attribute(obj, attr, default)).upper()

    class Node(Schema):
        name = fields.String()
        children = fields.List(fields.Nested(lambda: Node()))

    order = {"lines": [{"n": 1}, {"n": 2}], "one": {"n": 3}}
    tree = {"name": "a", "children": [{"name": "b", "children": [{"name": "c", "children": []}]}]}
    for schema, obj in ((Order(), order), (Loud(), {"name": "abc"}), (Node(), tree)):
        assert compile_dump(schema)(obj) == schema.dump(obj)
    assert compile_dump(Order())(order)["lines"]["count"] == 2

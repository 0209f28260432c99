"""Response schemas compiled into plain functions (same output as ``Schema.dump``).

Marshmallow's ``dump`` walks every field through ``serialize`` -> ``get_value`` ->
the accessor -> ``_serialize`` for every object; for a page of 50 tickets of 21
fields that was two thirds of the request (bench/tickets.py). The output
schemas are fixed at start-up, so this module resolves the per-field work once:
a dict is read by key, and strings, integers and nested schemas are converted
inline. Anything else keeps marshmallow's own ``_serialize`` for the value, and
whatever this module does not understand (dump hooks, a custom ``get_attribute``,
a schema nested in itself, dotted attributes, objects that are not dicts, missing
keys, hence defaults) goes through marshmallow unchanged. tests/shared/test_dumping.py
compares both on every response schema of every service and on those cases.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type

from ..schemas import UtcDateTime

Dump = Callable[[Any], Any]


def _string(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    return ensure_text_type(value)


_UTC_DATETIME = UtcDateTime()


def _utc_isoformat(value: Any) -> Any:
    """``UtcDateTime._serialize`` in ISO format, without its three calls per value."""
    if type(value) is datetime:
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()
    return None if value is None else _UTC_DATETIME._serialize(value, None, None)


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


#: Fields whose output depends on the value alone (not on the object or attribute name),
#: when their ``_serialize`` is marshmallow's or ours (``UtcDateTime``).
_VALUE_ONLY = (fields.Boolean, fields.Number, fields.DateTime, fields.Date, fields.UUID)
_KNOWN_MODULES = ("marshmallow.", "logistics_shared.")


def _overrides(field: fields.Field[Any], base: type[fields.Field[Any]], *names: str) -> bool:
    return any(getattr(type(field), name) is not getattr(base, name) for name in names)


def _plain(schema: Schema) -> bool:
    """No dump hooks and marshmallow's own attribute access: what compiling assumes."""
    return (
        not schema._hooks[PRE_DUMP]
        and not schema._hooks[POST_DUMP]
        and type(schema).get_attribute is Schema.get_attribute
    )


def _converter(field: fields.Field[Any], outer: frozenset[type]) -> Callable[[Any], Any]:
    """value -> output for one field (``_serialize`` with the lookup already done)."""
    if _overrides(field, fields.Field, "serialize", "get_value"):
        raise LookupError  # the field reads the object itself: leave it to marshmallow
    if isinstance(field, fields.Nested) and not _overrides(field, fields.Nested, "_serialize"):
        nested = field.schema
        if not _plain(nested) or type(nested) in outer:
            # Hooks see the whole collection and ``many``; a schema nested in itself would
            # compile forever: marshmallow dumps these.
            raise LookupError
        dump_one = _compile(nested, False, outer)
        if nested.many or field.many:
            return lambda value: None if value is None else [dump_one(each) for each in value]
        return lambda value: None if value is None else dump_one(value)
    if isinstance(field, fields.List) and not _overrides(field, fields.List, "_serialize"):
        inner = _converter(field.inner, outer)
        return lambda value: None if value is None else [inner(each) for each in value]
    if type(field) is fields.String:
        return _string
    if type(field) is fields.Integer and not field.as_string:
        return _integer
    if type(field) is UtcDateTime and (field.format or field.DEFAULT_FORMAT) in ("iso", "iso8601"):
        return _utc_isoformat
    if isinstance(field, _VALUE_ONLY) and type(field)._serialize.__module__.startswith(_KNOWN_MODULES):
        serialize = field._serialize
        return lambda value: serialize(value, None, None)
    raise LookupError  # e.g. Method or Function fields read the object: marshmallow does it


#: What ``dict.get`` answers for a key the object does not hold.
_ABSENT = object()


def compile_dump(schema: Schema, many: bool | None = None) -> Dump:
    """A function equal to ``schema.dump`` (``many`` defaults to the schema's)."""
    return _compile(schema, schema.many if many is None else many, frozenset())


def _compile(schema: Schema, many: bool, outer: frozenset[type]) -> Dump:
    if not _plain(schema):
        return lambda obj: schema.dump(obj, many=many)
    outer = outer | {type(schema)}
    steps: list[tuple[str, str, str, fields.Field[Any], Callable[[Any], Any] | None]] = []
    for name, field in schema.dump_fields.items():
        key = field.data_key if field.data_key is not None else name
        attribute = field.attribute if field.attribute is not None else name
        try:
            convert = _converter(field, outer)
        except LookupError:
            convert = None
        if "." in attribute:  # marshmallow reads "a.b" as obj["a"]["b"]
            convert = None
        steps.append((name, key, attribute, field, convert))
    get_attribute = schema.get_attribute

    def dump_one(obj: Any) -> Any:
        if type(obj) is not dict:
            return schema.dump(obj, many=False)
        out = {}
        for name, key, attribute, field, convert in steps:
            if convert is not None:
                value = obj.get(attribute, _ABSENT)
                if value is not _ABSENT:
                    # A str (or None) for a String field is its own output: _string inline,
                    # without a call per field (most fields of most responses are strings).
                    if convert is _string and (value is None or type(value) is str):
                        out[key] = value
                    else:
                        out[key] = convert(value)
                    continue
            value = field.serialize(name, obj, accessor=get_attribute)  # marshmallow's own path
            if value is not missing:
                out[key] = value
        return out

    if many:
        return lambda objs: schema.dump(objs, many=True) if objs is None else [dump_one(o) for o in objs]
    return dump_one

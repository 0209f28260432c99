"""Input schemas loaded by a plain loop over their fields (the same result as ``Schema.load``).

``Schema.load`` wraps each field's own ``deserialize`` in an error store, a getter closure
and ``_call_and_store``, looks its hooks up, checks for unknown names with a set built per
call and stores each value through ``set_value``: for a query string of two or three
parameters that machinery cost more than the fields' own work. For a schema with none of
what it exists for (load hooks, ``partial``, ``many``, dotted attributes; unknown names
refused), :func:`compile_load` returns a function that calls each load field's
``deserialize`` exactly as ``Schema._deserialize`` does, in the same order.

Whenever that does not simply succeed (an unknown name, a field raising a
``ValidationError``: a missing required value, a bad one), the same data goes to
``schema.load``, so every error, its message and its order are marshmallow's own.
tests/shared/test_loading.py compares both on every query schema of every service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, missing
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

Load = Callable[[dict[str, Any]], Any]


def _plain(schema: Schema) -> bool:
    """Nothing ``Schema.load`` does besides calling its fields: what the loop assumes."""
    cls = type(schema)
    return (
        not any(schema._hooks[tag] for tag in (PRE_LOAD, POST_LOAD, VALIDATES, VALIDATES_SCHEMA))
        and schema.unknown == RAISE
        and not schema.partial
        and not schema.many
        and schema.dict_class is dict
        and cls.load is Schema.load
        and cls._do_load is Schema._do_load
        and cls._deserialize is Schema._deserialize
    )


def compile_load(schema: Schema) -> Load:
    """A function equal to ``schema.load`` for a dict (from a query string or a JSON body)."""
    if not _plain(schema):
        return schema.load
    steps: list[tuple[str, str, Any]] = []
    for name, field in schema.load_fields.items():
        key = field.data_key if field.data_key is not None else name
        attribute = field.attribute or name
        if "." in attribute:  # marshmallow stores "a.b" as out["a"]["b"]
            return schema.load
        steps.append((key, attribute, field.deserialize))
    known = frozenset(key for key, _attribute, _deserialize in steps)

    def load(data: dict[str, Any]) -> Any:
        if type(data) is not dict or not known.issuperset(data):
            return schema.load(data)  # not a dict, or unknown names: marshmallow's errors
        out = {}
        try:
            for key, attribute, deserialize in steps:
                value = deserialize(data.get(key, missing), key, data)
                if value is not missing:
                    out[attribute] = value
        except ValidationError:
            return schema.load(data)  # raises marshmallow's error, with every field's message
        return out

    return load

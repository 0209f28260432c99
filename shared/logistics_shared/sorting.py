"""``?sort=`` on a list: allow-listed keys, ``-`` for descending, and keyset cursors.

Every list declares its :class:`Sorts` (the keys a person may sort by and the default),
its query schema gets :meth:`Sorts.field` (a 422 at ``/sort`` naming the allowed values,
an enum in the OpenAPI document), and its domain function orders, continues and pages
through the :class:`Sort` that field loads to. One shape for every list, so each is
stable the same way:

- rows are ordered by the key and then by the row's id, so rows tied on the key still
  have one total order and a page boundary between two of them loses or repeats none;
- the next page continues after the row-value ``(key, id)`` of the last row — a single
  comparison a B-tree on ``(key, id)`` answers as an index range, in either direction
  (each list has that index: tests/shared/test_list_plans.py checks the plan);
- the cursor holds the sort it was made for, and a cursor reused with another sort is a
  422 at ``/cursor`` (its values would mean nothing in the other order).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from marshmallow import fields, validate
from sqlalchemy import bindparam, tuple_

from .db import aware
from .errors import InvalidField
from .schemas import decode_cursor, page_of

Kind = Literal["text", "int", "datetime"]

_INT = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class SortKey:
    """A key a list can be sorted by."""

    name: str
    #: How the key's value is written in a cursor and read back from it.
    kind: Kind = "text"
    #: The key alone orders the rows totally (a unique column): no id breaks ties.
    unique: bool = False


@dataclass(frozen=True)
class Sort:
    """One of a list's sorts, as ``?sort=`` named it (``-created_at``)."""

    token: str
    key: SortKey
    descending: bool
    #: The kind of the id column that breaks ties on the key.
    id_kind: Kind

    @property
    def name(self) -> str:
        return self.key.name

    def order_by(self, column: Any, ident: Any) -> list[Any]:
        """The ORDER BY: the key, then the id (unless the key is unique)."""
        parts = [column] if self.key.unique else [column, ident]
        return [part.desc() for part in parts] if self.descending else parts

    def after(self, column: Any, ident: Any, values: Sequence[Any] | None = None) -> Any:
        """WHERE the rows after a cursor's ``values`` (:meth:`decode`), as one row-value
        comparison; without ``values``, with the bound parameters ``after_key`` and
        ``after_id`` (a statement built once, see :meth:`params`)."""
        if values is None:
            key: Any = bindparam("after_key", type_=column.type)
            last: Any = bindparam("after_id", type_=ident.type)
        else:
            key = bindparam(None, values[0], type_=column.type)
            last = bindparam(None, values[1] if len(values) > 1 else None, type_=ident.type)
        if self.key.unique:
            return column < key if self.descending else column > key
        row, bound = tuple_(column, ident), tuple_(key, last)
        return row < bound if self.descending else row > bound

    def decode(self, cursor: str) -> tuple[Any, ...]:
        """The key value (and id) a cursor made by :meth:`page` for this sort continues after."""
        values = decode_cursor(cursor, None)
        if len(values) < 2 or values[0] not in _ALL_TOKENS:
            raise InvalidField("/cursor", "Not a valid cursor.")
        if values[0] != self.token:
            raise InvalidField(
                "/cursor",
                f"This cursor belongs to sort={values[0]}, not sort={self.token}: "
                "start again without a cursor to change the order.",
            )
        expected = 2 if self.key.unique else 3
        if len(values) != expected:
            raise InvalidField("/cursor", "Not a valid cursor.")
        kinds = [self.key.kind] if self.key.unique else [self.key.kind, self.id_kind]
        return tuple(_read(kind, value) for kind, value in zip(kinds, values[1:], strict=True))

    def params(self, cursor: str) -> dict[str, Any]:
        """The ``after_key``/``after_id`` parameters of :meth:`after` for ``cursor``."""
        values = self.decode(cursor)
        return {"after_key": values[0], "after_id": values[-1]}

    def page(
        self, rows: Sequence[Any], limit: int, key: Callable[[Any], tuple[Any, Any]]
    ) -> tuple[list[Any], str | None]:
        """Trim a ``limit + 1`` result to a page; its cursor from ``key(row)`` = (key value, id)."""

        def cursor_values(row: Any) -> tuple[Any, ...]:
            value, ident = key(row)
            written = _write(self.key.kind, value)
            return (self.token, written) if self.key.unique else (self.token, written, ident)

        return page_of(rows, limit, cursor_values)


#: Every token any list accepts, so a cursor of another list's sort reads as made up.
_ALL_TOKENS: set[str] = set()


@dataclass(frozen=True)
class Sorts:
    """The sorts one list allows: ``keys`` ascending or, with ``-``, descending."""

    keys: tuple[SortKey, ...]
    default: str
    id_kind: Kind = "text"

    def __post_init__(self) -> None:
        _ALL_TOKENS.update(self.choices)
        self.parse(self.default)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(token for key in self.keys for token in (key.name, f"-{key.name}"))

    def of(self, sort: Sort | None) -> Sort:
        """``sort``, or the default when a caller (a CLI, a test) names none."""
        return sort if sort is not None else self.parse(self.default)

    def parse(self, token: str) -> Sort:
        name = token.removeprefix("-")
        for key in self.keys:
            if key.name == name:
                return Sort(token, key, token.startswith("-"), self.id_kind)
        raise InvalidField("/sort", f"Must be one of: {', '.join(self.choices)}.")

    def field(self) -> SortField:
        """The ``sort`` query parameter of the list's query schema."""
        return SortField(self)


class SortField(fields.String):
    """``?sort=``: one of the list's tokens, loaded to its :class:`Sort`."""

    def __init__(self, sorts: Sorts) -> None:
        self.sorts = sorts
        choices = sorts.choices
        super().__init__(
            load_default=sorts.parse(sorts.default),
            validate=validate.OneOf(choices, error=f"Must be one of: {', '.join(choices)}."),
            metadata={
                "description": f"Order of the list: a key, `-` first for descending "
                f"(default `{sorts.default}`). Ties are broken by the row's id; a cursor "
                "belongs to the sort it was made with.",
                "default": sorts.default,
            },
        )

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        # The token is checked by OneOf first, so a Sort is only made from an allowed one.
        token = super().deserialize(value, attr, data, **kwargs)
        return self.sorts.parse(token) if isinstance(token, str) else token


def _write(kind: Kind, value: Any) -> str:
    if kind == "datetime":
        return str(aware(value).isoformat())
    return str(value)


def _read(kind: Kind, value: str) -> Any:
    if kind == "int":
        # Not int() alone: it also reads "1_0", " 7" and "²"; and 30 digits overflow a column.
        if not _INT.fullmatch(value):
            raise InvalidField("/cursor", "Not a valid cursor.")
        return int(value)
    if kind == "datetime":
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidField("/cursor", "Not a valid cursor.") from None
        if stamp.tzinfo is None:
            raise InvalidField("/cursor", "Not a valid cursor.")
        return stamp
    return value


__all__ = ["Sort", "SortField", "SortKey", "Sorts"]

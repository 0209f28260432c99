"""Hot reads on PostgreSQL: statements built once, compiled once, sent straight to psycopg.

A read request gets a :class:`ReadConnection` from the autocommit read engine. For a
``SELECT`` marked with :func:`prebuilt` (a statement built once, at import or under
``functools.cache``), its ``execute`` compiles the statement on first use, then passes the
SQL string and the bound values to the psycopg connection and wraps the rows itself. What
that skips is SQLAlchemy's execution machinery around a cached statement: the cache-key
lookup, the execution context, the cursor result and its row processing, about 50-150 µs a
query, which in a hot read was more than the query's own network round trip.

What it keeps: bound values go through the same bind processors and the same compiled SQL
(so the server sees exactly what ``Connection.execute`` would send, and psycopg prepares it
the same way); result values go through the column types' result processors; a driver error
goes through SQLAlchemy's own handling (wrapped in ``DBAPIError``, the connection
invalidated on a disconnect), so the 503 problems and the pool's recovery are unchanged.
Anything else, an unmarked statement, SQLite, an engine with event listeners (a test
counting statements), takes SQLAlchemy's path. tests/shared/test_readpath.py compares both.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Select

_S = TypeVar("_S", bound=Select[Any])

#: The execution option that marks a statement built once.
PREBUILT = "logistics_prebuilt"


def prebuilt(stmt: _S) -> _S:
    """Mark a SELECT built once (module level or cached) for :class:`ReadConnection`'s path."""
    return stmt.execution_options(**{PREBUILT: True})


@dataclass
class _Plan:
    """A prebuilt statement compiled for one dialect: what each execution reuses."""

    compiled: Any
    sql: str
    expanding: bool
    bind_processors: dict[str, Callable[[Any], Any]]
    row: type
    types: tuple[Any, ...]
    #: Per result column, from the first execution's cursor description (some types'
    #: processors depend on the column's type code, as in SQLAlchemy's own results).
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None

    def processors_for(self, description: Sequence[Any], dialect: Dialect) -> None:
        found = []
        for index, (type_, column) in enumerate(zip(self.types, description, strict=True)):
            process = type_.dialect_impl(dialect).result_processor(dialect, column.type_code)
            if process is not None:
                found.append((index, process))
        self.result_processors = tuple(found)

    def parameters(self, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if self.expanding:
            # IN lists (``bindparam(..., expanding=True)``): the SQL depends on their lengths.
            state = self.compiled.construct_expanded_state(values)
            sql, params = state.statement, dict(state.parameters)
            processors = state.processors
        else:
            sql, params = self.sql, self.compiled.construct_params(values)
            processors = self.bind_processors
        for name, process in processors.items():
            if name in params and params[name] is not None:
                params[name] = process(params[name])
        return sql, params

    def rows(self, raw: Sequence[tuple[Any, ...]]) -> list[Any]:
        make = self.row._make  # type: ignore[attr-defined]
        if not self.result_processors:  # None only before the first execution's description
            return [make(r) for r in raw]
        out = []
        for r in raw:
            values = list(r)
            for index, process in self.result_processors:
                values[index] = process(values[index])
            out.append(make(values))
        return out


def _row_class(keys: list[str]) -> type:
    """A named tuple with SQLAlchemy ``Row``'s ``_mapping``: attribute, index and key access."""
    base = collections.namedtuple("Row", keys, rename=True)  # type: ignore[misc]
    names = tuple(keys)

    def mapping(self: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(names, self, strict=True))

    return type("Row", (base,), {"__slots__": (), "_mapping": property(mapping)})


_plans: dict[tuple[int, str], tuple[Select[Any], _Plan]] = {}
_plans_lock = threading.Lock()


def _plan(stmt: Select[Any], dialect: Dialect) -> _Plan:
    key = (id(stmt), dialect.name)
    found = _plans.get(key)
    if found is not None and found[0] is stmt:
        return found[1]
    compiled = stmt.compile(dialect=dialect)
    columns = list(stmt.selected_columns)
    plan = _Plan(
        compiled=compiled,
        sql=compiled.string,
        expanding=any(b.expanding for b in compiled.binds.values()),
        # Single callables: the tuple form is for tuple-typed parameters, which reads do not bind.
        bind_processors={k: v for k, v in compiled._bind_processors.items() if callable(v)},
        row=_row_class([str(c.key) for c in columns]),
        types=tuple(c.type for c in columns),
    )
    with _plans_lock:
        # The statement is kept with its plan: its id() stays its own while it lives.
        _plans[key] = (stmt, plan)
    return plan


class ReadConnection(Connection):
    """The read engine's connection class (``make_read_engine``); see the module docstring."""

    def __init__(
        self,
        engine: Any,
        connection: Any = None,
        _has_events: bool | None = None,
        _allow_revalidate: bool = True,
        _allow_autobegin: bool = True,
    ) -> None:
        if _has_events is None and not engine._has_events and not type(self)._has_events:
            # Nobody listens to the engine or to connections: nothing to join. Joining
            # builds a dispatcher for this connection and one joined to the engine's, a
            # tenth of the read path's own instructions per request. (A listener added to
            # the engine while this request-long connection lives would not see it.)
            _has_events = False
        super().__init__(engine, connection, _has_events, _allow_revalidate, _allow_autobegin)

    def execute(self, statement: Any, parameters: Any = None, *, execution_options: Any = None) -> Any:
        if (
            execution_options is None
            and isinstance(statement, Select)
            and statement._execution_options.get(PREBUILT)
            and (parameters is None or type(parameters) is dict)
            and not self._has_events
            and not self.engine._has_events
        ):
            return self._execute_prebuilt(statement, parameters or {})
        return super().execute(statement, parameters, execution_options=execution_options)

    def _execute_prebuilt(self, statement: Select[Any], values: dict[str, Any]) -> ReadResult:
        plan = _plan(statement, self.dialect)
        sql, params = plan.parameters(values)
        try:
            driver = self.connection.driver_connection
            cursor = driver.execute(sql, params)  # type: ignore[union-attr]
            raw = cursor.fetchall()
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's handling decides (and re-raises)
            self._handle_dbapi_exception(error, sql, params, None, None)
        if plan.result_processors is None:
            plan.processors_for(cursor.description, self.dialect)
        return ReadResult(plan.rows(raw))


class ReadResult:
    """The part of SQLAlchemy's ``Result`` that reads use, over rows already fetched."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    fetchall = all

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> Any:
        if not self._rows:
            raise exc.NoResultFound("No row was found when one was required")
        return self.one_or_none()

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> _Values:
        return _Values([r[0] for r in self._rows])

    def mappings(self) -> _Values:
        return _Values([r._mapping for r in self._rows])


class _Values:
    """``ScalarResult`` / ``MappingResult``: plain values."""

    __slots__ = ("_values",)

    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def all(self) -> list[Any]:
        return list(self._values)

    def first(self) -> Any:
        return self._values[0] if self._values else None

    def one_or_none(self) -> Any:
        if len(self._values) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> Any:
        if not self._values:
            raise exc.NoResultFound("No row was found when one was required")
        return self.one_or_none()

"""The hot-read path (shared/logistics_shared/readpath.py) answers exactly as SQLAlchemy does.

Every statement runs twice on the same PostgreSQL read connection: through
``ReadConnection.execute`` (prebuilt: straight to psycopg) and through SQLAlchemy's own
``Connection.execute``; rows, keys, attribute access and the result methods must agree, for
every column type class the services use or might, for IN lists of any length, and for the
services' own prebuilt statements. A driver error must come out as SQLAlchemy's, with the
connection invalidated on a disconnect, so the 503 problem and the pool's recovery hold.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import bindparam, cast, event, exc, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from logistics_shared.db import make_engine, make_read_engine
from logistics_shared.readpath import ReadConnection, ReadResult, prebuilt
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


class Colour(enum.Enum):
    red = "red"
    blue = "blue"


#: One statement per type class: (id, expression, bound value).
TYPED: list[tuple[str, Any, Any]] = [
    ("integer", sa.Integer(), 7),
    ("big-integer", sa.BigInteger(), 2**40),
    ("numeric-decimal", sa.Numeric(10, 2), decimal.Decimal("12.34")),
    ("numeric-as-float", sa.Numeric(10, 2, asdecimal=False), decimal.Decimal("12.5")),
    ("float", sa.Float(), 1.25),
    ("boolean", sa.Boolean(), True),
    ("string", sa.String(20), "MUG-01"),
    ("text-null", sa.Text(), None),
    ("date", sa.Date(), dt.date(2026, 12, 3)),
    ("timestamp-tz", sa.DateTime(timezone=True), dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)),
    ("timestamp-naive", sa.DateTime(), dt.datetime(2026, 12, 3, 10, 0)),
    ("interval", sa.Interval(), dt.timedelta(hours=3)),
    ("uuid-as-str", sa.Uuid(as_uuid=False), "6a28dc1d-ec83-4a9e-9036-fb7edafd96dd"),
    ("uuid-as-uuid", sa.Uuid(), uuid.UUID("6a28dc1d-ec83-4a9e-9036-fb7edafd96dd")),
    ("json", sa.JSON(), {"a": [1, 2], "b": None}),
    ("jsonb", postgresql.JSONB(), {"k": "v"}),
    ("enum", sa.Enum(Colour, native_enum=False, length=10), Colour.blue),
    ("array", postgresql.ARRAY(sa.Integer()), [1, 2, 3]),
]


@pytest.fixture
def engines(database_factory, specs, tmp_path) -> Iterator[tuple[Engine, Engine]]:
    settings = make_settings("inventory", database_factory(specs["inventory"], "postgres"), tmp_path)
    write = make_engine(settings)
    read = make_read_engine(settings, write)
    yield read, write
    read.dispose()
    write.dispose()


def _both(conn: Connection, stmt: Any, params: dict[str, Any] | None = None) -> tuple[Any, Any]:
    assert isinstance(conn, ReadConnection)
    fast = conn.execute(stmt, params)
    assert isinstance(fast, ReadResult), "a prebuilt SELECT takes the read path"
    slow = Connection.execute(conn, stmt, params)
    return fast, slow


def _same_rows(fast: list[Any], slow: list[Any]) -> None:
    assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
    assert [dict(r._mapping) for r in fast] == [dict(r._mapping) for r in slow]
    for f, s in zip(fast, slow, strict=True):
        for key in s._mapping:
            assert getattr(f, key) == getattr(s, key)
            assert type(getattr(f, key)) is type(getattr(s, key))


@pytest.mark.parametrize(("type_", "value"), [pytest.param(t, v, id=i) for i, t, v in TYPED])
def test_each_column_type_reads_as_sqlalchemy_reads_it(engines, type_: Any, value: Any) -> None:
    read, _ = engines
    stmt = prebuilt(select(cast(bindparam("v", type_=type_), type_).label("v"), literal(1).label("one")))
    with read.connect() as conn:
        fast, slow = _both(conn, stmt, {"v": value})
        _same_rows(fast.all(), slow.all())


def test_in_lists_of_any_length_expand_as_sqlalchemy_expands_them(engines) -> None:
    read, _ = engines
    numbers = select(sa.func.generate_series(1, 20).label("n")).subquery("numbers")
    stmt = prebuilt(
        select(numbers.c.n)
        .where(numbers.c.n.in_(bindparam("wanted", expanding=True)), numbers.c.n > bindparam("above"))
        .order_by(numbers.c.n)
    )
    with read.connect() as conn:
        for wanted in ([3], [1, 5, 9, 12], [], list(range(1, 21))):
            fast, slow = _both(conn, stmt, {"wanted": wanted, "above": 2})
            _same_rows(fast.all(), slow.all())


RESULT_METHODS = ["all", "first", "one", "one_or_none", "scalar", "scalar_one", "scalar_one_or_none"]


@pytest.mark.parametrize("rows", [0, 1, 2], ids=["no-row", "one-row", "two-rows"])
@pytest.mark.parametrize("method", RESULT_METHODS)
def test_result_methods_answer_or_raise_as_sqlalchemy(engines, rows: int, method: str) -> None:
    read, _ = engines
    rows_param = bindparam("rows", type_=sa.Integer())
    numbers = select(sa.func.generate_series(1, rows_param).label("n")).subquery("numbers")
    stmt = prebuilt(select(numbers.c.n, (numbers.c.n * 10).label("ten")).order_by(numbers.c.n))
    with read.connect() as conn:
        fast, slow = _both(conn, stmt, {"rows": rows})
        outcomes = []
        for result in (fast, slow):
            try:
                got = getattr(result, method)()
                outcomes.append(("value", [tuple(r) for r in got] if method == "all" else _plain(got)))
            except (exc.NoResultFound, exc.MultipleResultsFound) as error:
                outcomes.append(("raises", type(error)))
        assert outcomes[0] == outcomes[1]


def _plain(value: Any) -> Any:
    return tuple(value) if hasattr(value, "_mapping") else value


def test_scalars_and_mappings(engines) -> None:
    read, _ = engines
    numbers = select(sa.func.generate_series(1, 3).label("n")).subquery("numbers")
    stmt = prebuilt(select(numbers.c.n).order_by(numbers.c.n))
    with read.connect() as conn:
        fast, slow = _both(conn, stmt)
        assert fast.scalars().all() == slow.scalars().all() == [1, 2, 3]
        fast, slow = _both(conn, stmt)
        assert fast.mappings().all() == [dict(m) for m in slow.mappings().all()]


def test_the_services_prebuilt_statements_read_as_sqlalchemy_reads_them(
    database_factory, specs, tmp_path
) -> None:
    """On the demo-shaped schema of each service, with its own statements (empty tables read too)."""
    from inventory.domain.catalog import _ITEM_BY_SKU
    from inventory.domain.stock import _stock_query
    from inventory.models import STOCK_SORTS
    from shipping.domain.lookup import _BY_NUMBER
    from shipping.domain.shipments import _BY_ID, _LABEL, _children
    from shipping.domain.tracking import _HISTORY
    from support.domain.tickets import EQUALITY_FILTERS, _list_query
    from support.models import TICKET_SORTS

    cases: dict[str, list[tuple[Any, dict[str, Any]]]] = {
        "inventory": [
            (_ITEM_BY_SKU, {"sku": "MUG-01"}),
            *(
                (
                    _stock_query(by_sku, by_wh, scoped, after, STOCK_SORTS.parse(sort)),
                    {
                        "sku": "MUG-01",
                        "warehouse": "AMS",
                        "scope": ["AMS", "RTM"],
                        "after_key": 0,
                        "after_id": 0,
                        "limit": 51,
                    },
                )
                for by_sku in (False, True)
                for by_wh in (False, True)
                for scoped in (False, True)
                for after in (False, True)
                for sort in STOCK_SORTS.choices
            ),
        ],
        "shipping": [
            (_BY_ID, {"id": str(uuid.uuid4())}),
            (_LABEL, {"shipment_id": str(uuid.uuid4())}),
            (_HISTORY, {"shipment_id": str(uuid.uuid4())}),
            (_BY_NUMBER, {"number": "DP1"}),
            *((stmt, {"shipment_id": str(uuid.uuid4())}) for stmt in _children("postgresql").values()),
        ],
        "support": [
            (
                _list_query(EQUALITY_FILTERS[:k], scoped, after, TICKET_SORTS.parse(sort)),
                {
                    **dict.fromkeys(EQUALITY_FILTERS, "x"),
                    "scope": ["AMS"],
                    "after_key": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                    "after_id": "",
                    "limit": 51,
                },
            )
            for k in (0, 1, len(EQUALITY_FILTERS))
            for scoped in (False, True)
            for after in (False, True)
            for sort in TICKET_SORTS.choices
        ],
    }
    for service, statements in cases.items():
        settings = make_settings(service, database_factory(specs[service], "postgres"), tmp_path)
        read = make_read_engine(settings, make_engine(settings))
        try:
            with read.connect() as conn:
                for stmt, params in statements:
                    wanted = {b.key for b in stmt.compile(dialect=read.dialect).binds.values()}
                    fast, slow = _both(conn, stmt, {k: v for k, v in params.items() if k in wanted})
                    _same_rows(fast.all(), slow.all())
        finally:
            read.dispose()


def test_unmarked_statements_and_engines_with_listeners_take_sqlalchemys_path(engines) -> None:
    read, _ = engines
    with read.connect() as conn:
        assert not isinstance(conn.execute(select(literal(1))), ReadResult)
    seen: list[str] = []
    event.listen(read, "before_cursor_execute", lambda *args: seen.append(args[2]))
    with read.connect() as conn:
        result = conn.execute(prebuilt(select(literal(1).label("x"))))
        assert not isinstance(result, ReadResult)
        assert result.scalar() == 1
    assert seen, "a listener on the engine sees every statement"


def test_a_connection_joins_the_engines_events_only_when_someone_listens(engines) -> None:
    read, _ = engines
    with read.connect() as conn:
        # Nobody listens: no dispatcher of its own, none joined to the engine's.
        assert conn._has_events is False and "dispatch" not in vars(conn)
        # A listener on the connection itself still hears what it runs, read path or not.
        seen: list[str] = []
        event.listen(conn, "before_cursor_execute", lambda *args: seen.append(args[2]))
        assert conn.execute(prebuilt(select(literal(1).label("x")))).scalar() == 1
        assert conn.execute(select(literal(2))).scalar() == 2
        assert len(seen) == 2
    event.listen(read, "before_cursor_execute", lambda *args: None)
    with read.connect() as conn:
        assert "dispatch" in vars(conn), "joined to the engine's listeners"


def test_a_disconnect_is_sqlalchemys_error_and_the_pool_recovers(engines) -> None:
    """The backend terminated under a read (PostgreSQL restarted): DBAPIError with the
    connection invalidated (the 503 problem), then the next checkout works."""
    read, write = engines
    stmt = prebuilt(select(sa.func.pg_backend_pid().label("pid")))
    with read.connect() as conn:
        pid = conn.execute(stmt).scalar()
        with write.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        with pytest.raises(exc.OperationalError) as raised:
            conn.execute(stmt)
        assert raised.value.connection_invalidated
    with read.connect() as conn:
        assert conn.execute(stmt).scalar() != pid


def test_a_failing_statement_raises_sqlalchemys_error_with_the_drivers_message(engines) -> None:
    read, _ = engines
    stmt = prebuilt(select((literal(1) / bindparam("zero", type_=sa.Integer())).label("x")))
    with read.connect() as conn:
        with pytest.raises(exc.DataError, match="division by zero") as raised:
            conn.execute(stmt, {"zero": 0})
        assert not raised.value.connection_invalidated
        assert conn.execute(stmt, {"zero": 1}).scalar() == 1

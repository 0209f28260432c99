"""Database engine and the per-request session (the pypi/warehouse pattern).

The engine lives in the registry; ``request.dbsession`` is created lazily,
joined to ``request.tm`` through zope.sqlalchemy and closed when the request
finishes, so views never commit or roll back by hand.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.request import Request
from sqlalchemy import Float, MetaData, Table, and_, create_engine, event, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

from .settings import Settings

#: Constraint names Alembic can diff and drop (pyramid-cookiecutter-starter's
#: ``models/meta.py``); every service's metadata uses them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def database_url(raw: str) -> URL:
    """Normalise ``postgresql://`` / ``postgres://`` to the psycopg 3 driver."""
    url = make_url(raw.replace("postgres://", "postgresql://", 1) if raw.startswith("postgres://") else raw)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(settings: Settings, pg_settings: tuple[str, ...] = (), **overrides: Any) -> Engine:
    """The service's engine; ``pg_settings`` (``"name=value"``) apply to every PostgreSQL session."""
    url = database_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **overrides,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN until the first
        # write, which lets a read-then-write race; take the write lock at
        # BEGIN instead so SQLite serialises writers cleanly.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    options = " ".join(
        f"-c {setting}" for setting in (f"statement_timeout={settings.db_statement_timeout_ms}", *pg_settings)
    )
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No pre-ping: it costs a round trip on every checkout. A connection
        # the server dropped fails one request with a 503, and SQLAlchemy then
        # invalidates the whole pool; recycling bounds a connection's age.
        pool_recycle=1800,
        pool_timeout=settings.db_connect_timeout,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "options": options,
            "application_name": f"logistics-{settings.service}",
        },
        **overrides,
    )
    if overrides.get("isolation_level") != "AUTOCOMMIT":
        send_begin_with_first_statement(engine)
    return engine


def make_read_engine(
    settings: Settings, engine: Engine, pg_settings: tuple[str, ...] = (), **overrides: Any
) -> Engine:
    """An autocommit engine for read-only requests (PostgreSQL); SQLite shares the one engine."""
    if engine.dialect.name != "postgresql":
        return engine
    # psycopg sets autocommit client-side, so a checkout costs no round trip,
    # and there is nothing to roll back when the connection returns.
    read_engine = make_engine(
        settings, pg_settings, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **overrides
    )
    from .readpath import ReadConnection

    # Prebuilt SELECTs go straight to psycopg (readpath.py). SQLAlchemy names the class
    # its Engine makes connections of in this attribute (Engine.connect()).
    read_engine._connection_cls = ReadConnection
    return read_engine


#: psycopg connections whose BEGIN goes out with their first statement.
_PIPELINED: weakref.WeakSet[Any] = weakref.WeakSet()
#: Those of them in a transaction SQLAlchemy began and whose BEGIN is not sent yet.
_BEGIN_PENDING: weakref.WeakSet[Any] = weakref.WeakSet()
#: ``Session.info``: writes nobody reads the result of, sent with the COMMIT.
_AT_COMMIT = "logistics.at_commit"


def send_begin_with_first_statement(engine: Engine) -> None:
    """Send a transaction's BEGIN in the network round trip of its first statement.

    psycopg sends BEGIN on its own and waits for the answer (in a pipeline too: it
    syncs after its BEGIN), which is a round trip per transaction. So the driver runs
    in autocommit and SQLAlchemy's transaction begins here, the way SQLite's
    ``BEGIN IMMEDIATE`` does above: the BEGIN waits, unsent, for the first statement
    and goes with it in one psycopg pipeline. COMMIT and ROLLBACK stay the driver's
    (psycopg sends them whenever the server reports a transaction open); a transaction
    that ran nothing has nothing to end. Code that takes the DBAPI connection itself
    calls :func:`begin_now` first.
    """

    @event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.autocommit = True
        _PIPELINED.add(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        dbapi_connection = conn.connection.driver_connection
        if dbapi_connection in _PIPELINED:
            _BEGIN_PENDING.add(dbapi_connection)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _end(conn: Connection) -> None:
        if conn.invalidated:
            # A disconnect (the backend terminated, PostgreSQL restarted) invalidated the
            # connection: ``conn.connection`` would raise PendingRollbackError here, in the
            # rollback that ends the request, and turn its 503 problem into a 500
            # (tests/ops/test_connection_budget.py). The DBAPI connection is gone; the weak
            # set forgets it with the object.
            return
        _BEGIN_PENDING.discard(conn.connection.driver_connection)

    @event.listens_for(engine, "do_execute")
    def _execute(cursor: Any, statement: str, parameters: Any, _context: Any) -> bool:
        return _with_begin(cursor, lambda: cursor.execute(statement, parameters))

    @event.listens_for(engine, "do_execute_no_params")
    def _execute_no_params(cursor: Any, statement: str, _context: Any) -> bool:
        return _with_begin(cursor, lambda: cursor.execute(statement))

    @event.listens_for(engine, "do_executemany")
    def _executemany(cursor: Any, statement: str, parameters: Any, _context: Any) -> bool:
        return _with_begin(cursor, lambda: cursor.executemany(statement, parameters))


def _with_begin(cursor: Any, run: Callable[[], Any]) -> bool:
    dbapi_connection = cursor.connection
    if dbapi_connection not in _BEGIN_PENDING:
        return False  # SQLAlchemy executes it as usual
    _BEGIN_PENDING.discard(dbapi_connection)
    with dbapi_connection.pipeline():
        dbapi_connection.execute(b"BEGIN")
        run()
    return True


def begin_now(connection: Connection) -> None:
    """Send a pending BEGIN now, before using ``connection``'s DBAPI connection directly."""
    dbapi_connection = connection.connection.driver_connection
    if dbapi_connection in _BEGIN_PENDING:
        _BEGIN_PENDING.discard(dbapi_connection)
        dbapi_connection.execute(b"BEGIN")  # type: ignore[union-attr]


def execute_at_commit(session: Session, statement: Any, parameters: Any = None) -> None:
    """Execute a write whose result nobody reads when ``session`` commits, in its
    transaction: on PostgreSQL in the COMMIT's own round trip (see :func:`commit_round_trip`)."""
    session.connection()  # the session's transaction (and the request's) begins now, as before
    session.info.setdefault(_AT_COMMIT, []).append((statement, parameters))


def run_at_commit(session: Session) -> None:
    statements = session.info.pop(_AT_COMMIT, None)
    for statement, parameters in statements or ():
        session.execute(statement, parameters)


@contextmanager
def commit_round_trip(session: Session) -> Iterator[bool]:
    """Around the writes a root commit still makes: on PostgreSQL, queue them in one
    pipeline with the COMMIT, so the writes and the COMMIT cost one round trip together.
    Yields whether they are pipelined (their results cannot be read then).

    Only for a session on an engine of its own, not one joined to an outer
    connection's transaction (as tests do): only there is this commit the real one.
    Errors surface as SQLAlchemy's, as they would from ``execute``.
    """
    bind = session.get_bind()
    connection = session.connection() if isinstance(bind, Engine) else None
    dbapi_connection: Any = connection.connection.driver_connection if connection is not None else None
    if connection is None or dbapi_connection not in _PIPELINED or connection.in_nested_transaction():
        yield False
        return
    session.flush()  # ORM changes first: nothing may be written after the COMMIT
    try:
        with dbapi_connection.pipeline():
            if dbapi_connection in _BEGIN_PENDING:
                _BEGIN_PENDING.discard(dbapi_connection)
                dbapi_connection.execute(b"BEGIN")
            yield True
            dbapi_connection.execute(b"COMMIT")
    except bind.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            "COMMIT", None, exc, bind.dialect.loaded_dbapi.Error, dialect=bind.dialect
        ) from exc


def has_writes_at_commit(session: Session) -> bool:
    return bool(session.info.get(_AT_COMMIT))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see the "begin" listener above).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_unless_exists(
    session: Session | Connection,
    table: Table,
    values: dict[str, Any],
    unique: list[str],
    returning: Any = None,
) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING``: the row, or ``None`` if the key exists.

    Race-free where "select, then insert" is not: two concurrent inserts of
    one key give one row and one clean ``None`` instead of an IntegrityError
    (on PostgreSQL the second waits for the first to commit).
    """
    dialect = session.get_bind().dialect.name if isinstance(session, Session) else session.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values).on_conflict_do_nothing(index_elements=unique)
    if returning is not None:
        return session.execute(stmt.returning(*returning)).first()
    # RETURNING, not rowcount: rowcount is not reliable across drivers here.
    first = next(iter(table.primary_key.columns))
    return session.execute(stmt.returning(first)).first() is not None


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class epoch_seconds(FunctionElement[float]):  # noqa: N801 - used like a SQL function
    """``epoch_seconds(column)``: a datetime column as seconds since 1970 (a float), for
    arithmetic on times that must read the same on PostgreSQL and SQLite
    (``EXTRACT(EPOCH ...)`` there, ``julianday`` here: to the microsecond, where
    SQLAlchemy's own ``extract('epoch')`` on SQLite drops the fraction of a second)."""

    type = Float()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds)
def _epoch_seconds(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # SQLite stores UTC datetimes as text; julianday() reads them (an offset too).
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


def created_keyset(created: Any, ident: Any, cursor: str) -> Any:
    """WHERE clause continuing a (created_at, id) ordered listing after ``cursor``.

    The cursor is the one ``page_of(..., key=lambda r: (created_at iso, id))`` made.
    """
    after, last_id = decode_created_cursor(cursor)
    return or_(created > after, and_(created == after, ident > last_id))


def decode_created_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a :func:`created_keyset` cursor continues after (422 if made up)."""
    from .errors import InvalidField
    from .schemas import decode_cursor

    stamp, last_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(stamp), last_id
    except ValueError:
        raise InvalidField("/cursor", "Not a valid cursor.") from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_dbsession(request: Request) -> Session | Connection:
    if request.method in READ_ONLY_METHODS:
        # Reads run in autocommit on a pool of their own: one round trip per
        # query instead of BEGIN + query + ROLLBACK, and no transaction
        # manager to join (that alone cost about a fifth of a stock read).
        # A Connection, not an ORM Session: reads only execute Core statements,
        # and a Session's set-up and teardown were an eighth of a read's CPU.
        connection: Connection = request.registry["dbengine_read"].connect()
        request.add_finished_callback(lambda _request: connection.close())
        return connection
    session: Session = request.registry["dbsession_factory"]()
    # "changed": Core statements run through session.execute must commit too.
    zope.sqlalchemy.register(session, transaction_manager=request.tm, initial_state="changed")
    request.add_finished_callback(lambda _request: session.close())
    return session


def includeme(config: Configurator) -> None:
    from .dbpool import pool_options

    settings: Settings = config.registry["logistics.settings"]
    pg_settings = config.registry["logistics.service"].pg_settings
    # Pool metrics (logistics_db_pool_*), per engine, when the app has a metrics registry.
    metrics = getattr(config.registry.get("logistics.metrics"), "db_pool", None)
    url = database_url(settings.database_url)
    engine = config.registry.get("dbengine") or make_engine(
        settings, pg_settings, **pool_options(url, metrics, "write")
    )
    config.registry["dbengine"] = engine
    config.registry["dbsession_factory"] = session_factory(engine)
    read_engine = config.registry.get("dbengine_read") or make_read_engine(
        settings, engine, pg_settings, **pool_options(url, metrics, "read")
    )
    config.registry["dbengine_read"] = read_engine
    config.registry["dbsession_factory_read"] = session_factory(read_engine)

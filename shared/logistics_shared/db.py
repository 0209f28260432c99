"""Database engine and the per-request session (the pypi/warehouse pattern).

The engine lives in the registry; ``request.dbsession`` is created lazily,
joined to ``request.tm`` through zope.sqlalchemy and closed when the request
finishes, so views never commit or roll back by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.request import Request
from sqlalchemy import MetaData, Table, and_, create_engine, event, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

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
    return create_engine(
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


def make_read_engine(
    settings: Settings, engine: Engine, pg_settings: tuple[str, ...] = (), **overrides: Any
) -> Engine:
    """An autocommit engine for read-only requests (PostgreSQL); SQLite shares the one engine."""
    if engine.dialect.name != "postgresql":
        return engine
    # psycopg sets autocommit client-side, so a checkout costs no round trip,
    # and there is nothing to roll back when the connection returns.
    return make_engine(
        settings, pg_settings, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **overrides
    )


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


def created_keyset(created: Any, ident: Any, cursor: str) -> Any:
    """WHERE clause continuing a (created_at, id) ordered listing after ``cursor``.

    The cursor is the one ``page_of(..., key=lambda r: (created_at iso, id))`` made.
    """
    from .errors import InvalidField
    from .schemas import decode_cursor

    stamp, last_id = decode_cursor(cursor, 2)
    try:
        after = datetime.fromisoformat(stamp)
    except ValueError:
        raise InvalidField("/cursor", "Not a valid cursor.") from None
    return or_(created > after, and_(created == after, ident > last_id))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _dbsession(request: Request) -> Session | Connection:
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
    config.add_request_method(_dbsession, "dbsession", reify=True)

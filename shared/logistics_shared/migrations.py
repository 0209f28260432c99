"""Alembic per service, driven programmatically so a plain install can migrate."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cache

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicError
from sqlalchemy import Engine, MetaData, engine_from_config, pool

from .db import database_url
from .service import ServiceSpec
from .settings import Settings


def alembic_config(spec: ServiceSpec, settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", spec.migrations)
    url = database_url(settings.database_url)
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["target_metadata"] = spec.metadata()
    # For the data steps that need a setting (shipping's 0009 encrypts with secrets_key).
    config.attributes["settings"] = settings
    return config


def upgrade(spec: ServiceSpec, settings: Settings, revision: str = "head") -> None:
    if settings.is_sqlite:
        from .db import make_engine

        make_engine(settings).dispose()  # creates the var directory
    command.upgrade(alembic_config(spec, settings), revision)


def run_env(target_metadata: MetaData | None = None) -> None:
    """Body of every service's ``migrations/env.py``."""
    config = context.config
    metadata = config.attributes.get("target_metadata", target_metadata)
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            # SQLite cannot ALTER constraints in place; batch mode rebuilds tables.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


@dataclass(frozen=True)
class SchemaState:
    """The database's Alembic revision(s) against this code's script head(s)."""

    current: str | None
    head: str
    migrated: bool

    def as_dict(self) -> dict[str, str | None]:
        return {"current": self.current, "head": self.head}


@cache
def _script(migrations: str) -> ScriptDirectory:
    # Read once per process: the scripts are part of the installed code.
    config = Config()
    config.set_main_option("script_location", migrations)
    return ScriptDirectory.from_config(config)


def schema_state(spec: ServiceSpec, engine: Engine) -> SchemaState:
    """One query on ``alembic_version``; raises the driver's error when the database is unreachable.

    Through a raw DBAPI connection on purpose: SQLAlchemy's ``begin`` hook takes
    SQLite's write lock (``BEGIN IMMEDIATE``), which the failed request that asks
    this may still hold.
    """
    script = _script(spec.migrations)
    heads = tuple(sorted(script.get_heads()))
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT version_num FROM alembic_version")
            rows = {row[0] for row in cursor.fetchall()}
        except Exception as exc:
            if not is_undefined_schema(exc):
                raise
            rows = set()
        finally:
            cursor.close()
        connection.rollback()
    finally:
        connection.close()
    known = {row for row in rows if _known(script, row)}
    # A revision this code does not know is a newer one (a rolling deploy migrated ahead of
    # this replica): expand-then-contract migrations keep the old code working, so it counts.
    migrated = bool(rows) and (set(heads) <= rows or known != rows)
    return SchemaState(current=",".join(sorted(rows)) or None, head=",".join(heads), migrated=migrated)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except AlembicError:
        return False


#: SQLSTATE undefined_table / undefined_column (PostgreSQL).
_UNDEFINED_SQLSTATES = frozenset({"42P01", "42703"})
_SQLITE_UNDEFINED = ("no such table", "no such column", "has no column named")


def is_undefined_schema(exc: BaseException) -> bool:
    """A statement named a table or column the database lacks: the schema is behind the code.

    Takes the SQLAlchemy wrapper or the driver's own exception.
    """
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) in _UNDEFINED_SQLSTATES:
        return True
    return isinstance(orig, sqlite3.OperationalError) and str(orig).startswith(_SQLITE_UNDEFINED)


def wait_for_schema(
    spec: ServiceSpec, settings: Settings, timeout: float, interval: float = 2.0
) -> tuple[bool, SchemaState | None, str]:
    """Poll until the database is at (or past) this code's head, for at most ``timeout`` seconds.

    For a pod's initContainer: the rollout waits for the migrate Job instead of
    serving on an old schema. An unreachable database is retried too (the
    database may start after the pod). Returns (migrated, last state, last error).
    """
    import time

    from sqlalchemy.exc import DBAPIError

    from .db import make_engine

    deadline = time.monotonic() + timeout
    state: SchemaState | None = None
    error = ""
    engine = make_engine(settings)  # one connection at a time, disposed on return
    try:
        while True:
            try:
                state = schema_state(spec, engine)
                error = ""
                if state.migrated:
                    return True, state, error
            except DBAPIError as exc:  # unreachable or refusing while the database comes up
                error = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            if time.monotonic() + interval > deadline:
                return False, state, error
            time.sleep(interval)
    finally:
        engine.dispose()

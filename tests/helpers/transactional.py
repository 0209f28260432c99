"""One app and one migrated database per xdist worker; each test inside a transaction.

The pypi/warehouse pattern: the test opens a connection and begins a transaction;
everything the app does — its write sessions (joined to ``request.tm``), its read
sessions (autocommit in production), its own short transactions (an idempotency
key's claim) — runs on that connection, each of its commits becoming a savepoint,
and the test ends with a rollback. So a test sees the rows it wrote through any
path, and leaves nothing behind. Tests that need real commits (other connections,
threads, workers, brokers) take a cloned database instead (``@pytest.mark.fresh_app``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection, Engine


class _Borrowed:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __enter__(self) -> Connection:
        return self._connection

    def __exit__(self, *_exc: object) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class ConnectionEngine:
    """Stands in for the app's engines: ``connect()``/``begin()`` give the test's connection
    (``begin`` as a savepoint), so nothing the app does can commit for real."""

    def __init__(self, connection: Connection, real: Engine) -> None:
        self.connection = connection
        self.real = real
        self.dialect = connection.dialect
        self.url = real.url
        self.name = real.name

    def connect(self) -> _Borrowed:
        """The test's connection, usable as ``with engine.connect() as conn`` or as
        ``conn = engine.connect(); ...; conn.close()``: closing it closes nothing."""
        return _Borrowed(self.connection)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.connection.begin_nested():
            yield self.connection

    def raw_connection(self) -> Any:
        # A DBAPI connection of its own (the schema-version check rolls it back): it reads
        # alembic_version, which tests never change, committed by the migration.
        return self.real.raw_connection()

    def dispose(self) -> None:
        """The real engine is the worker's; it is disposed at the end of the session."""


@contextmanager
def in_transaction(registry: Any, engine: Engine) -> Iterator[Connection]:
    """Point ``registry``'s engines and session factories at one connection in a transaction,
    for the duration; roll back and put them back afterwards."""
    connection = engine.connect()
    outer = connection.begin()
    saved = {key: registry[key] for key in ("dbengine", "dbengine_read")}
    factories = [registry["dbsession_factory"], registry["dbsession_factory_read"]]
    stand_in = ConnectionEngine(connection, engine)
    registry["dbengine"] = registry["dbengine_read"] = stand_in
    for factory in factories:
        factory.configure(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield connection
    finally:
        for factory in factories:
            factory.configure(bind=saved["dbengine"] if factory is factories[0] else saved["dbengine_read"])
            factory.kw.pop("join_transaction_mode", None)
        registry.update(saved)
        if outer.is_active:
            outer.rollback()
        connection.close()

"""Throwaway databases: created (dropped first if they exist), dropped afterwards whatever happens."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from .core import JWT_SECRET, PG_URL

if TYPE_CHECKING:
    from logistics_shared.settings import Settings


def _pg_admin(pg_url: str, sql: str) -> None:
    with psycopg.connect(f"{pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def postgres_version(pg_url: str = PG_URL) -> str:
    with psycopg.connect(f"{pg_url.rstrip('/')}/postgres") as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0]}" if row else "PostgreSQL"


def postgres_facts(pg_url: str) -> str:
    """The server's version and ``synchronous_commit`` (what a commit waits for)."""
    try:
        with psycopg.connect(f"{pg_url.rstrip('/')}/postgres") as conn:
            sync = conn.execute("SHOW synchronous_commit").fetchone()
        return f"{postgres_version(pg_url)} · synchronous_commit={sync[0] if sync else '?'}"
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach PostgreSQL at {pg_url}: {exc}") from None


@contextmanager
def database(backend: str, name: str, pg_url: str = PG_URL) -> Iterator[str]:
    """Yield the URL of an empty database, dropped (or deleted) afterwards whatever happens."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'inventory.sqlite3'}"
        return
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        _pg_admin(pg_url, drop)
        _pg_admin(pg_url, f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach PostgreSQL at {pg_url}: {exc}") from None
    try:
        yield f"{pg_url.rstrip('/')}/{name}"
    finally:
        _pg_admin(pg_url, drop)
        print(f"dropped database {name}", file=sys.stderr)


@contextmanager
def databases(pg_url: str, names: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """One PostgreSQL database per service (``names``: service -> database), created in that
    order and dropped in the reverse order; yields service -> URL."""
    with ExitStack() as stack:
        yield {
            service: stack.enter_context(database("postgres", name, pg_url))
            for service, name in names.items()
        }


def make_settings(service: str, database_url: str, broker_url: str, namespace: str, var_dir: str) -> Settings:
    """A service's settings for in-process use (migrations, engines, a consumer), quiet."""
    from logistics_shared.settings import load_settings

    ini = {
        "database_url": database_url,
        "broker_url": broker_url,
        "bus_namespace": namespace,
        "jwt_secret": JWT_SECRET,
        "var_dir": var_dir,
        "log_level": "WARNING",
        "access_log": "false",
    }
    return load_settings(service, ini, environ={})


@contextmanager
def migrated_databases(
    pg_url: str, names: Mapping[str, str], broker_url: str, var_dir: str
) -> Iterator[dict[str, str]]:
    """``databases``, each migrated to its head with ``logistics_shared.migrations.upgrade``."""
    from logistics_shared.migrations import upgrade
    from logistics_shared.service import discover

    specs = discover()
    with databases(pg_url, names) as urls:
        for name, url in urls.items():
            upgrade(specs[name], make_settings(name, url, broker_url, "unused", var_dir))
        yield urls

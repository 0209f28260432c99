"""A database that answers but is not migrated: /readyz and the API say so, and name the fix.

Not "unreachable" (nothing is down) and not an SQL error ("no such table"): a 503
that tells the operator to run ``logistics migrate <svc>``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from webtest import TestApp

from logistics_shared.identity import Role
from logistics_shared.migrations import schema_state, upgrade
from logistics_shared.security import load_keyring, mint_token
from logistics_shared.service import ServiceSpec

from ..conftest import make_settings
from ..services import PG_URL, need_postgres

ITEM = {
    "sku": "NM-1",
    "name": "Not migrated",
    "unit_weight_g": 10,
    "length_mm": 10,
    "width_mm": 10,
    "height_mm": 10,
    "reorder_point": 1,
}


def _admin(sql: str) -> None:
    with psycopg.connect(f"{PG_URL.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``make(backend)`` -> URL of a reachable database with no tables at all."""
    created: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path / f"empty-{len(created)}.sqlite3"
            path.touch()
            created.append("")
            return f"sqlite:///{path}"
        need_postgres()
        name = f"lt_hard_nm_{os.getpid()}_{len(created)}"
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{PG_URL.rstrip('/')}/{name}"

    yield make
    for name in created:
        if name:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class App:
    def __init__(self, spec: ServiceSpec, url: str, tmp_path: Path) -> None:
        self.settings = make_settings(spec.name, url, tmp_path)
        self.wsgi = spec.configure(self.settings).make_wsgi_app()
        self.web = TestApp(self.wsgi)
        token = mint_token(load_keyring(self.settings), role=Role.ADMIN, subject="nm")
        self.auth = {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        for key in ("dbengine", "dbengine_read"):
            self.wsgi.registry[key].dispose()


@pytest.fixture
def app_on(specs: dict[str, ServiceSpec], tmp_path: Path) -> Iterator[Callable[[str], App]]:
    apps: list[App] = []

    def make(url: str) -> App:
        apps.append(App(specs["inventory"], url, tmp_path))
        return apps[-1]

    yield make
    for app in apps:
        app.close()


def _head(spec: ServiceSpec, url: str, tmp_path: Path) -> str:
    from logistics_shared.db import make_engine

    engine = make_engine(make_settings(spec.name, url, tmp_path))
    try:
        return schema_state(spec, engine).head
    finally:
        engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_database_is_not_ready_and_the_api_says_to_migrate(
    backend, empty_database, app_on, specs, tmp_path
):
    url = empty_database(backend)
    app = app_on(url)
    head = _head(specs["inventory"], url, tmp_path)

    ready = app.web.get("/readyz", status=503)
    assert ready.json == {
        "status": "unavailable",
        "database": "not migrated",
        "schema": {"current": None, "head": head},
    }
    assert ready.headers["Retry-After"]

    for method, call in (
        ("GET", lambda: app.web.get("/v1/items", headers=app.auth, status=503)),
        # A write: on SQLite its BEGIN IMMEDIATE still holds the lock while the check runs.
        ("POST", lambda: app.web.post_json("/v1/items", ITEM, headers=app.auth, status=503)),
    ):
        started = time.monotonic()
        res = call()
        assert time.monotonic() - started < 5, f"{method} waited for a lock"
        assert res.content_type == "application/problem+json", method
        assert res.json["status"] == 503
        assert "not migrated" in res.json["detail"], res.json
        assert "logistics migrate inventory" in res.json["detail"], res.json
        assert "unreachable" not in res.json["detail"]
        assert res.json["schema"] == {"current": None, "head": head}
        assert res.headers["Retry-After"]
        for leak in ("no such table", "UndefinedTable", "relation", "sqlite", "psycopg"):
            assert leak not in res.text, (method, leak)

    # Migrating fixes it in place: the next request finds the tables, no restart needed.
    upgrade(specs["inventory"], app.settings)
    assert app.web.get("/readyz").json == {
        "status": "ready",
        "database": "ok",
        "schema": {"current": head, "head": head},
    }
    assert app.web.get("/v1/items", headers=app.auth).json["items"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_behind_the_code_is_not_migrated_either(backend, empty_database, app_on, specs, tmp_path):
    url = empty_database(backend)
    settings = make_settings("inventory", url, tmp_path)
    # 0003 adds idempotency_keys.scope: a keyed POST on 0002 names a column that is not there.
    upgrade(specs["inventory"], settings, "0002")
    app = app_on(url)
    ready = app.web.get("/readyz", status=503).json
    assert ready["database"] == "not migrated"
    assert ready["schema"]["current"] == "0002"
    res = app.web.post_json(
        "/v1/items", ITEM, headers={**app.auth, "Idempotency-Key": "behind-1"}, status=503
    )
    assert "not migrated (schema 0002" in res.json["detail"], res.json
    assert "logistics migrate inventory" in res.json["detail"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_ahead_of_the_code_stays_ready(backend, database_factory, app_on, specs):
    # A rolling deploy migrates before the last old replica stops; it must not leave the balancer.
    url = database_factory(specs["inventory"], backend)
    app = app_on(url)
    with app.wsgi.registry["dbengine"].begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    assert app.web.get("/readyz").json["schema"]["current"] == "9999_from_the_future"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_missing_table_on_a_migrated_database_is_a_bug_not_a_migration(
    backend, database_factory, app_on, specs, caplog
):
    url = database_factory(specs["inventory"], backend)
    app = app_on(url)
    with app.wsgi.registry["dbengine"].begin() as conn:
        conn.execute(text("DROP TABLE idempotency_keys"))
    assert app.web.get("/readyz").json["database"] == "ok"
    with caplog.at_level(logging.ERROR, logger="logistics_shared.web.problems"):
        res = app.web.post_json("/v1/items", ITEM, headers={**app.auth, "Idempotency-Key": "k"}, status=500)
    assert "not migrated" not in res.json["detail"]
    assert any(record.message == "unhandled error" for record in caplog.records)


def test_an_unreachable_database_logs_the_drivers_message(specs, tmp_path, caplog, app_on):
    with socket.socket() as sock:  # bound, never listening: refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = app_on(f"postgresql://postgres@127.0.0.1:{port}/lt_hard_nowhere")
        with caplog.at_level(logging.WARNING, logger="logistics_shared.web.problems"):
            res = app.web.get("/v1/items", headers=app.auth, status=503)
    assert "unreachable" in res.json["detail"]
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("database unavailable")]
    assert messages, caplog.text
    # psycopg's own words, on one line: where it tried and what happened.
    assert f"port {port} failed" in messages[0], messages
    assert "\n" not in messages[0]

"""`logistics wait-for-schema`: a pod's initContainer waits for the migrate Job, bounded."""

from __future__ import annotations

import threading
import time

from alembic import command
from click.testing import CliRunner

from logistics_shared.cli import main
from logistics_shared.migrations import alembic_config, upgrade, wait_for_schema

from ..conftest import make_settings


def _one_behind(database_factory, specs, tmp_path, monkeypatch):
    spec = specs["inventory"]
    url = database_factory(spec, "postgres")
    settings = make_settings(spec.name, url, tmp_path)
    command.downgrade(alembic_config(spec, settings), "-1")
    monkeypatch.setenv("LOGISTICS_INVENTORY_DATABASE_URL", url)
    return spec, settings


def test_one_revision_behind_waits_then_times_out(database_factory, specs, tmp_path, monkeypatch):
    spec, settings = _one_behind(database_factory, specs, tmp_path, monkeypatch)
    started = time.monotonic()
    migrated, state, _error = wait_for_schema(spec, settings, timeout=1.5, interval=0.5)
    assert not migrated and state is not None
    assert 1.0 <= time.monotonic() - started < 10
    assert state.current != state.head
    result = CliRunner().invoke(main, ["wait-for-schema", "inventory", "--timeout", "1", "--interval", "0.5"])
    assert result.exit_code == 1
    assert f"at revision {state.current}, this code expects {state.head}" in result.output


def test_migrating_in_parallel_lets_it_succeed(database_factory, specs, tmp_path, monkeypatch):
    spec, settings = _one_behind(database_factory, specs, tmp_path, monkeypatch)
    migrator = threading.Timer(1.0, upgrade, args=(spec, settings))
    migrator.start()
    try:
        migrated, state, _error = wait_for_schema(spec, settings, timeout=30, interval=0.3)
    finally:
        migrator.join()
    assert migrated and state is not None and state.current == state.head

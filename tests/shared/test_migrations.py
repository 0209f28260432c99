"""Each service's Alembic chain builds exactly the tables its models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from logistics_shared.db import database_url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_migrations_match_the_models(database_factory, specs, service, backend):
    spec = specs[service]
    engine = create_engine(database_url(database_factory(spec, backend)))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, spec.metadata())
    finally:
        engine.dispose()
    assert diff == []


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_downgrade_to_base_and_back(service, specs, tmp_path):
    from alembic import command

    from logistics_shared.migrations import alembic_config, upgrade

    from ..conftest import make_settings

    settings = make_settings(service, f"sqlite:///{tmp_path}/{service}.sqlite3", tmp_path)
    upgrade(specs[service], settings)
    command.downgrade(alembic_config(specs[service], settings), "base")
    upgrade(specs[service], settings)

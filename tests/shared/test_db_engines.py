"""How the services' PostgreSQL connections are set up."""

from __future__ import annotations

import pytest
from sqlalchemy import text


@pytest.mark.parametrize("engine", ["dbengine", "dbengine_read"])
def test_postgres_sessions_always_plan_with_the_parameters(service_client, engine):
    """A generic plan (psycopg prepares after five runs) ignores the parameter values; for
    ticket search that meant a sequential scan for every term once a common one had been
    searched (bench/tickets.py: 500 -> 55 req/s). Support's sessions force custom plans."""
    client = service_client("support", "postgres")
    with client.registry[engine].connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar_one() == "force_custom_plan"
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() != "0"


def test_other_services_keep_postgres_default_plan_cache(service_client):
    client = service_client("inventory", "postgres")
    with client.registry["dbengine_read"].connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar_one() == "auto"

"""Alembic per service, driven programmatically so a plain install can migrate."""

from __future__ import annotations

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, engine_from_config, pool

from .db import database_url
from .service import ServiceSpec
from .settings import Settings


def alembic_config(spec: ServiceSpec, settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", spec.migrations)
    url = database_url(settings.database_url)
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["target_metadata"] = spec.metadata()
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

"""The one ``MetaData`` every support table is declared on, with the platform tables."""

from __future__ import annotations

from sqlalchemy import CheckConstraint

from logistics_shared.db import new_metadata
from logistics_shared.platform_tables import add_platform_tables

metadata = new_metadata()
platform = add_platform_tables(metadata, webhooks=True)
outbox = platform.outbox


def one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    """``column IN (values...)``, named ``name``."""
    return CheckConstraint(f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")", name=name)

"""The support service's tables. Its own domain tables arrive with its issue; the
platform tables (outbox, idempotency keys) are here from the start.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from logistics_shared.db import new_metadata
from logistics_shared.platform_tables import add_platform_tables

metadata = new_metadata()
platform = add_platform_tables(metadata)
outbox = platform.outbox


def get_metadata() -> MetaData:
    return metadata

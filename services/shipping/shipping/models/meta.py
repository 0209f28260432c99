"""The one ``MetaData`` every shipping table is declared on, with the platform tables."""

from __future__ import annotations

from logistics_shared.db import new_metadata
from logistics_shared.platform_tables import add_platform_tables

metadata = new_metadata()
platform = add_platform_tables(metadata, webhooks=True)
outbox = platform.outbox

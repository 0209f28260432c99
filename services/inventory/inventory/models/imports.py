"""CSV imports uploaded over the API, and the bad rows each one reported.

An import is claimed and applied by inventory's worker; its progress (``rows_done``,
``resume_line``) is written in the same transaction as each chunk it applies, so a
worker that dies mid-import leaves a row another worker resumes exactly where the
last committed chunk ended.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from .meta import metadata

IMPORT_KINDS = ("items", "stock")
IMPORT_STATES = ("queued", "running", "succeeded", "failed")

imports = Table(
    "imports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    # The uploader, as the ledger names them (``role:subject``); the worker acts as them.
    Column("created_by", String(200), nullable=False),
    Column("subject", String(150), nullable=False),
    Column("role", String(20), nullable=False),
    # A stock import limited to one warehouse (always, for warehouse staff); NULL: any.
    Column("warehouse", String(32), nullable=True),
    Column("filename", String(255), nullable=True),
    Column("size_bytes", Integer, nullable=False),
    Column("rows_total", Integer, nullable=False),
    Column("rows_done", Integer, nullable=False, server_default="0"),
    Column("rows_failed", Integer, nullable=False, server_default="0"),
    Column("summary", Text, nullable=False),  # JSON {outcome: count}
    Column("resume_line", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),  # why it failed as a whole
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("kind IN ('items', 'stock')", name="kind_known"),
    CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status_known"),
)
# The worker's claim: the oldest queued (or stale running) import first.
Index("ix_imports_status_created", imports.c.status, imports.c.created_at)
Index("ix_imports_created", imports.c.created_at, imports.c.id)
Index("ix_imports_warehouse_created", imports.c.warehouse, imports.c.created_at)

import_errors = Table(
    "import_errors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("import_id", String(36), ForeignKey("imports.id"), nullable=False),
    Column("line", Integer, nullable=False),
    Column("column", String(64), nullable=False),
    Column("value", Text, nullable=False),
    Column("reason", Text, nullable=False),
)
Index("ix_import_errors_import_line", import_errors.c.import_id, import_errors.c.line, import_errors.c.id)

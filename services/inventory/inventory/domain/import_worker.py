"""Inventory's worker applies the imports uploaded over the API, one after another.

:func:`process_pending` (the ``imports`` periodic task) claims the oldest queued import
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas share the queue) and applies it
through ``inventory.importer``, the same set-based path as ``logistics inventory import``.
Each chunk's progress and bad rows are written in the chunk's own transaction: an import
whose worker dies is taken over after the lease (``import_lease_seconds``) and resumed
after its last committed chunk; one that keeps dying is marked failed, never left running.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from logistics_shared.identity import Identity, Role

from .. import importer
from ..models import import_errors, imports
from .common import utcnow
from .imports import spool_path

log = logging.getLogger(__name__)

#: Claims of one import (a worker that died each time) before it is marked failed.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class ScopedIdentity(Identity):
    """The uploader, limited to the import's one warehouse: rows for any other are
    refused as unknown warehouses, for an admin's scoped import too."""

    @property
    def all_warehouses(self) -> bool:
        return False


def _claim(session: Session, lease: timedelta) -> Any:
    """The oldest queued import, or a running one whose worker stopped committing (lease)."""
    stale = utcnow() - lease
    stmt = (
        select(imports)
        .where(
            or_(
                imports.c.status == "queued",
                and_(imports.c.status == "running", imports.c.heartbeat_at < stale),
            )
        )
        .order_by(imports.c.created_at, imports.c.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Replicas of the worker share the queue: each claims one the others are not holding.
        stmt = stmt.with_for_update(skip_locked=True)
    return session.execute(stmt).first()


def claim_next(factory: sessionmaker[Session], lease: timedelta, spool_dir: Path | None = None) -> Any | None:
    """Mark the next import running (one more attempt) and return it; ``None`` when there is none.

    One that has already been claimed ``MAX_ATTEMPTS`` times is marked failed instead, and its
    spool file (in ``spool_dir``) deleted once that is committed: nothing will read it again.
    """
    while True:
        given_up = None
        with factory() as session, session.begin():
            row = _claim(session, lease)
            if row is None:
                return None
            now = utcnow()
            if row.attempts >= MAX_ATTEMPTS:
                _finish(
                    session,
                    row.id,
                    "failed",
                    f"The worker stopped {row.attempts} times while applying this import; "
                    f"rows up to line {row.resume_line} were applied, the rest were not.",
                )
                given_up = row.id
            else:
                # Conditional on the attempt read: should two workers ever read the same row
                # (a database without SKIP LOCKED), only one of them takes it.
                taken = session.execute(
                    update(imports)
                    .where(imports.c.id == row.id, imports.c.attempts == row.attempts)
                    .values(
                        status="running",
                        attempts=row.attempts + 1,
                        started_at=func.coalesce(imports.c.started_at, now),
                        heartbeat_at=now,
                    )
                    .returning(imports.c.id)
                ).first()
                if taken is not None:
                    return row
        if given_up is not None and spool_dir is not None:
            spool_path(spool_dir, given_up).unlink(missing_ok=True)


def _finish(session: Session, import_id: str, status: str, error: str | None = None) -> None:
    session.execute(
        update(imports)
        .where(imports.c.id == import_id)
        .values(status=status, error=error, finished_at=utcnow(), heartbeat_at=utcnow())
    )


class _Progress:
    """The import's counters, written with every chunk (``importer.Checkpoint``)."""

    def __init__(self, row: Any, columns: list[str | None]) -> None:
        self.import_id = row.id
        self.columns = {name: i for i, name in enumerate(columns) if name is not None}
        self.counts = Counter(json.loads(row.summary))
        self.done = row.rows_done
        self.failed = row.rows_failed

    def __call__(self, session: Session, results: list[importer.RowResult]) -> None:
        errors = []
        for result in results:
            if result.outcome is None:
                self.failed += 1
                errors.extend(self._error_rows(result))
            else:
                self.counts[result.outcome] += 1
        self.done += len(results)
        if errors:
            session.execute(import_errors.insert(), errors)
        session.execute(
            update(imports)
            .where(imports.c.id == self.import_id)
            .values(
                rows_done=self.done,
                rows_failed=self.failed,
                summary=json.dumps(dict(self.counts)),
                resume_line=max(result.line for result in results),
                heartbeat_at=utcnow(),
            )
        )

    def _error_rows(self, result: importer.RowResult) -> list[dict[str, Any]]:
        """One per error: ``/sku`` names the column, whose cell in the row is the value."""
        rows = []
        for error in result.errors:
            column = error["pointer"].lstrip("/").split("/")[0]
            position = self.columns.get(column)
            value = (
                result.cells[position].strip()
                if position is not None and position < len(result.cells)
                else ""
            )
            rows.append(
                {
                    "import_id": self.import_id,
                    "line": result.line,
                    "column": column[:64],
                    "value": value,
                    "reason": error["detail"],
                }
            )
        return rows


def process_next(
    factory: sessionmaker[Session],
    spool_dir: Path,
    *,
    lease: timedelta,
    chunk_size: int = importer.DEFAULT_CHUNK_SIZE,
) -> str | None:
    """Claim and apply one import; its id, or ``None`` when none is waiting."""
    row = claim_next(factory, lease, spool_dir)
    if row is None:
        return None
    kind = importer.KINDS[row.kind]
    path = spool_path(spool_dir, row.id)
    try:
        source = importer.open_source(path, kind)
    except importer.ImportFileError as exc:
        with factory() as session, session.begin():
            _finish(session, row.id, "failed", f"The file cannot be imported: {exc}")
        path.unlink(missing_ok=True)
        return str(row.id)
    progress = _Progress(row, source.columns)
    result = importer.run_import(
        source,
        factory,
        _identity(row),
        chunk_size=min(chunk_size, importer.MAX_CHUNK_SIZE),
        after_line=row.resume_line,
        checkpoint=progress,
    )
    if result.stopped:
        # The database stopped answering: the import stays running; after the lease a worker
        # (this one, once the database is back) resumes it after its last committed chunk.
        log.warning("import %s stopped at line %s: %s", row.id, result.stopped_at_line, result.stopped)
        return str(row.id)
    with factory() as session, session.begin():
        _finish(session, row.id, "succeeded")
    path.unlink(missing_ok=True)
    log.info("import %s (%s): %d rows, %d failed", row.id, row.kind, progress.done, progress.failed)
    return str(row.id)


def _identity(row: Any) -> Identity:
    role = Role(row.role)
    if row.warehouse is not None:
        return ScopedIdentity(subject=row.subject, role=role, warehouses=frozenset({row.warehouse}))
    return Identity(subject=row.subject, role=role)


def process_pending(
    factory: sessionmaker[Session],
    spool_dir: Path,
    *,
    lease: timedelta,
    chunk_size: int = importer.DEFAULT_CHUNK_SIZE,
    stop: Any = None,
) -> int:
    """Apply waiting imports one after another until none is left; how many were taken."""
    taken = 0
    while (stop is None or not stop.is_set()) and process_next(
        factory, spool_dir, lease=lease, chunk_size=chunk_size
    ):
        taken += 1
    return taken

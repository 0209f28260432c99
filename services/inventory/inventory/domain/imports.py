"""Imports over the API: an uploaded CSV file, queued, applied by the worker in the background.

The web side (``views.imports``) spools the upload to disk and calls :func:`create_import`;
inventory's worker calls :func:`process_pending`, which claims the oldest queued import
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas share the queue) and applies it
through ``inventory.importer``, the same set-based path as ``logistics inventory import``.
Each chunk's progress and bad rows are written in the chunk's own transaction: an import
whose worker dies is taken over after the lease (``import_lease_seconds``) and resumed
after its last committed chunk; one that keeps dying is marked failed, never left running.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from logistics_shared.db import aware, decode_created_cursor
from logistics_shared.errors import Forbidden, InvalidField, NotFound
from logistics_shared.identity import Identity, Role
from logistics_shared.schemas import decode_id_cursor, page_of

from .. import importer
from ..models import import_errors, imports, warehouses
from .common import utcnow

log = logging.getLogger(__name__)

#: Claims of one import (a worker that died each time) before it is marked failed.
MAX_ATTEMPTS = 3
ERROR_COLUMNS = ("line", "column", "value", "reason")


@dataclass(frozen=True)
class ScopedIdentity(Identity):
    """The uploader, limited to the import's one warehouse: rows for any other are
    refused as unknown warehouses, for an admin's scoped import too."""

    @property
    def all_warehouses(self) -> bool:
        return False


def spool_dir(settings: Any) -> Path:
    """Where uploads wait for the worker: ``import_spool_dir``, else ``<var_dir>/imports``."""
    configured = settings.own.import_spool_dir
    return Path(configured) if configured else Path(settings.var_dir) / "imports"


def spool_path(spool_dir: Path, import_id: str) -> Path:
    return spool_dir / f"{import_id}.csv"


# --- creating -------------------------------------------------------------------------
def check_scope(session: Session, actor: Identity, kind: str, warehouse: str | None) -> str | None:
    """The warehouse the import is limited to, or a problem (before the upload is read).

    Items are the catalogue, which only admins change. Warehouse staff count stock in
    their own warehouses: one of them, named by ``warehouse`` (implied when they have one).
    """
    if kind == "items":
        if actor.role is not Role.ADMIN:
            raise Forbidden("Only admins import items.")
        if warehouse is not None:
            raise InvalidField("/warehouse", "An items import has no warehouse.")
        return None
    if warehouse is None and not actor.all_warehouses:
        if len(actor.warehouses) != 1:
            raise InvalidField("/warehouse", "Name the warehouse this count is for (one of yours).")
        (warehouse,) = actor.warehouses
    if warehouse is not None:
        row = session.execute(select(warehouses.c.code).where(warehouses.c.code == warehouse)).first()
        if row is None or not actor.can_access_warehouse(warehouse):
            raise InvalidField("/warehouse", f"Unknown warehouse {warehouse!r}.")
    return warehouse


def create_import(
    session: Session,
    actor: Identity,
    *,
    import_id: str,
    kind: str,
    warehouse: str | None,
    filename: str | None,
    size_bytes: int,
    rows_total: int,
) -> dict[str, Any]:
    now = utcnow()
    values = {
        "id": import_id,
        "kind": kind,
        "status": "queued",
        "created_by": actor.actor,
        "subject": actor.subject,
        "role": str(actor.role),
        "warehouse": warehouse,
        "filename": filename,
        "size_bytes": size_bytes,
        "rows_total": rows_total,
        "rows_done": 0,
        "rows_failed": 0,
        "summary": json.dumps({}),
        "resume_line": 0,
        "attempts": 0,
        "error": None,
        "created_at": now,
        "started_at": None,
        "heartbeat_at": None,
        "finished_at": None,
    }
    session.execute(imports.insert().values(**values))
    return _body(values)


def new_import_id() -> str:
    return str(uuid.uuid4())


# --- reading --------------------------------------------------------------------------
def _body(row: Any) -> dict[str, Any]:
    data = dict(row if isinstance(row, dict) else row._mapping)
    kind = importer.KINDS[data["kind"]]
    counts = json.loads(data["summary"])
    return {
        "id": data["id"],
        "kind": data["kind"],
        "status": data["status"],
        "warehouse": data["warehouse"],
        "filename": data["filename"],
        "size_bytes": data["size_bytes"],
        "rows_total": data["rows_total"],
        "rows_done": data["rows_done"],
        "rows_failed": data["rows_failed"],
        # Every outcome of the kind, so a client reads a count without guessing the keys.
        "summary": {outcome: counts.get(outcome, 0) for outcome in kind.outcomes},
        "error": data["error"],
        "created_by": data["created_by"],
        "created_at": aware(data["created_at"]),
        "started_at": aware(data["started_at"]),
        "finished_at": aware(data["finished_at"]),
    }


def _visible(actor: Identity) -> Any:
    """Staff see the imports of their warehouses; an unscoped import is an admin's."""
    if actor.all_warehouses:
        return None
    return imports.c.warehouse.in_(sorted(actor.warehouses))


def _find(session: Session | Connection, actor: Identity, import_id: str) -> Any:
    stmt = select(imports).where(imports.c.id == import_id)
    visible = _visible(actor)
    if visible is not None:
        stmt = stmt.where(visible)
    row = session.execute(stmt).first()
    if row is None:
        raise NotFound(f"No import {import_id!r}.")
    return row


def get_import(session: Session | Connection, actor: Identity, import_id: str) -> dict[str, Any]:
    return _body(_find(session, actor, import_id))


def list_imports(
    session: Session | Connection,
    actor: Identity,
    *,
    kind: str | None,
    status: str | None,
    warehouse: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first (the one just uploaded is the one people look for)."""
    stmt = select(imports).order_by(imports.c.created_at.desc(), imports.c.id.desc()).limit(limit + 1)
    visible = _visible(actor)
    if visible is not None:
        stmt = stmt.where(visible)
    if kind:
        stmt = stmt.where(imports.c.kind == kind)
    if status:
        stmt = stmt.where(imports.c.status == status)
    if warehouse:
        stmt = stmt.where(imports.c.warehouse == warehouse)
    if cursor:
        after, last_id = decode_created_cursor(cursor)
        stmt = stmt.where(
            or_(
                imports.c.created_at < after,
                and_(imports.c.created_at == after, imports.c.id < last_id),
            )
        )
    rows, next_cursor = page_of(
        list(session.execute(stmt)), limit, lambda r: (aware(r.created_at).isoformat(), r.id)
    )
    return [_body(row) for row in rows], next_cursor


def list_errors(
    session: Session | Connection, actor: Identity, import_id: str, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The import's bad rows, one per (line, column), in line order (the order they were
    written in: chunk after chunk, each in line order)."""
    _find(session, actor, import_id)
    stmt = (
        select(
            import_errors.c.id,
            import_errors.c.line,
            import_errors.c.column,
            import_errors.c.value,
            import_errors.c.reason,
        )
        .where(import_errors.c.import_id == import_id)
        .order_by(import_errors.c.id)
        .limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(import_errors.c.id > decode_id_cursor(cursor))
    rows, next_cursor = page_of(list(session.execute(stmt)), limit, lambda r: (r.id,))
    return [{name: getattr(row, name) for name in ERROR_COLUMNS} for row in rows], next_cursor


# --- processing (the worker) ----------------------------------------------------------------
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


def claim_next(factory: sessionmaker[Session], lease: timedelta) -> Any | None:
    """Mark the next import running (one more attempt) and return it; ``None`` when there is none.

    One that has already been claimed ``MAX_ATTEMPTS`` times is marked failed instead.
    """
    while True:
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
                continue
            session.execute(
                update(imports)
                .where(imports.c.id == row.id)
                .values(
                    status="running",
                    attempts=row.attempts + 1,
                    started_at=func.coalesce(imports.c.started_at, now),
                    heartbeat_at=now,
                )
            )
            return row


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
    row = claim_next(factory, lease)
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

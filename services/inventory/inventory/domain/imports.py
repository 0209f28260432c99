"""Imports over the API: an uploaded CSV file, queued for the worker (``domain.import_worker``).

The web side (``views.imports``) spools the upload to disk and calls :func:`create_import`;
the rest is what the API shows of an import: its state, the list, the bad rows.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from logistics_shared.db import aware, decode_created_cursor
from logistics_shared.errors import Forbidden, InvalidField, NotFound
from logistics_shared.identity import Identity, Role
from logistics_shared.schemas import decode_id_cursor, page_of

from .. import importer
from ..models import import_errors, imports, warehouses
from .common import utcnow

ERROR_COLUMNS = ("line", "column", "value", "reason")


def spool_dir(settings: Any) -> Path:
    """Where uploads wait for the worker: ``import_spool_dir``, else ``<var_dir>/imports``."""
    configured = settings.own.import_spool_dir
    return Path(configured) if configured else Path(settings.var_dir) / "imports"


def spool_path(spool_dir: Path, import_id: str) -> Path:
    return spool_dir / f"{import_id}.csv"


# --- creating -------------------------------------------------------------------------
def import_scope(actor: Identity, kind: str, warehouse: str | None) -> str | None:
    """The warehouse the import is limited to, or a problem: before the upload is read, and
    without the database (whose write lock, on SQLite, must wait for the key's claim).

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
    if warehouse is not None and not actor.can_access_warehouse(warehouse):
        raise _unknown_warehouse(warehouse)
    return warehouse


def _unknown_warehouse(code: str) -> InvalidField:
    # The same words for a warehouse that does not exist and one that is not the caller's.
    return InvalidField("/warehouse", f"Unknown warehouse {code!r}.")


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
    if warehouse is not None:
        found = session.execute(select(warehouses.c.code).where(warehouses.c.code == warehouse)).first()
        if found is None:
            raise _unknown_warehouse(warehouse)
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

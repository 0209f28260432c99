"""Writing events to the transactional outbox (publishing is the relay's job).

:meth:`Outbox.emit` validates an event and buffers its row on the session; the
session writes what it has buffered in **one multi-row INSERT** when it commits
(SQLAlchemy's ``before_commit``, also the one zope.sqlalchemy's commit goes
through), when it flushes ORM changes (``before_flush``), or on
:meth:`Outbox.flush`. So the rows still commit in the same transaction as the
change, in emit order (ascending ids), and a rollback — of the transaction, or
of the savepoint they were emitted in — drops them unwritten.

The relay is woken by a ``NOTIFY`` that a statement-level trigger on each
service's ``outbox`` table raises (each service's migrations create it); the
notification is delivered when the transaction commits, and only then. SQLite
has no NOTIFY: there the relay polls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.dml import Insert

from .db import commit_round_trip, has_writes_at_commit, run_at_commit
from .events import REGISTRY, Envelope, EventRegistry, new_envelope

log = logging.getLogger(__name__)

#: ``session.info`` key of the session's buffered outbox rows.
PENDING_KEY = "logistics.outbox.pending"


def notify_channel(service: str) -> str:
    """The PostgreSQL channel the outbox trigger notifies and the relay listens on."""
    return f"logistics_outbox_{service}"


class Outbox:
    """An event sink bound to one DB session: events commit or roll back with the change.

    Business code takes an ``Outbox`` and calls :meth:`emit`; it never talks to
    the broker, so a request thread never waits on RabbitMQ.
    """

    def __init__(
        self,
        session: Session,
        table: Table,
        *,
        producer: str,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        registry: EventRegistry = REGISTRY,
    ) -> None:
        self.session = session
        self.table = table
        self.producer = producer
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.registry = registry

    def emit(self, type: str, data: dict[str, Any], version: int = 1) -> Envelope:
        """Validate the event and buffer its row; it is written at the session's flush or commit."""
        envelope, row = self.build(type, data, version)
        _buffer(self.session, self.table, row)
        return envelope

    def build(self, type: str, data: dict[str, Any], version: int = 1) -> tuple[Envelope, dict[str, Any]]:
        """The validated envelope and the outbox row that carries it, written nowhere."""
        envelope = new_envelope(
            type,
            data,
            producer=self.producer,
            version=version,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )
        body = self.registry.validate_outgoing(envelope)
        row = {
            "event_id": str(envelope.id),
            "event_type": type,
            "event_version": version,
            "payload": orjson.dumps(body).decode(),
            "created_at": datetime.now(UTC),
        }
        return envelope, row

    def flush(self) -> int:
        """Write the session's buffered rows now (to read them back before the commit)."""
        return write_pending(self.session)


@dataclass(frozen=True)
class _Row:
    seq: int  # emit order within the session
    table: Table
    emitted_in: SessionTransaction  # the innermost (nested) transaction at emit time
    values: dict[str, Any]


@dataclass
class _Pending:
    """A session's outbox rows not written yet, and those written inside a savepoint that they
    were not emitted in (rolling that savepoint back must buffer them again)."""

    rows: list[_Row] = field(default_factory=list)
    written_in: list[tuple[SessionTransaction, _Row]] = field(default_factory=list)
    seq: int = 0


def _current(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def _boundary(transaction: SessionTransaction) -> SessionTransaction:
    """The savepoint or root transaction that ``transaction`` (maybe a flush's own) belongs to."""
    while not transaction.nested and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def _within(transaction: SessionTransaction, outer: SessionTransaction) -> bool:
    current: SessionTransaction | None = transaction
    while current is not None:
        if current is outer:
            return True
        current = current.parent
    return False


def _buffer(session: Session, table: Table, values: dict[str, Any]) -> None:
    transaction = _current(session)
    if transaction is None:
        # Begin now, as the INSERT used to: zope.sqlalchemy joins the request's
        # transaction when the session begins, and that commit must write the rows.
        session.connection()
        transaction = session.get_transaction()
        assert transaction is not None
    pending: _Pending | None = session.info.get(PENDING_KEY)
    if pending is None:
        pending = session.info[PENDING_KEY] = _Pending()
    pending.seq += 1
    pending.rows.append(_Row(pending.seq, table, transaction, values))


def pending_count(session: Session) -> int:
    """How many emitted rows the session holds unwritten."""
    pending: _Pending | None = session.info.get(PENDING_KEY)
    return len(pending.rows) if pending else 0


_statements: dict[tuple[Table, bool], Insert] = {}


def _statement(table: Table, returning: bool) -> Insert:
    found = _statements.get((table, returning))
    if found is None:
        # inline(): no implicit RETURNING of a single row's id, which nobody reads (and a
        # pipelined INSERT has no result to read until the COMMIT's round trip).
        stmt = insert(table).inline()
        # With RETURNING, SQLAlchemy sends a list of rows as one INSERT ... VALUES (...), (...)
        # ("insertmanyvalues"); without it psycopg would run one INSERT per row.
        found = _statements[(table, returning)] = stmt.returning(table.c.id) if returning else stmt
    return found


def write_pending(session: Session, *, pipelined: bool = False) -> int:
    """Write the session's buffered rows, one multi-row INSERT per table; returns how many.

    ``pipelined``: the INSERTs are queued in a pipeline with the COMMIT, where reading
    a RETURNING would cost a round trip of its own (psycopg sends a list of rows
    without it in the same pipeline, so there is no row-per-round-trip to avoid)."""
    pending: _Pending | None = session.info.get(PENDING_KEY)
    if not pending or not pending.rows:
        return 0
    rows, pending.rows = pending.rows, []
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        pending.written_in.extend((savepoint, r) for r in rows if not _within(r.emitted_in, savepoint))
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for row in rows:
        by_table.setdefault(row.table, []).append(row.values)
    many = session.get_bind().dialect.insert_executemany_returning and not pipelined
    for table, values in by_table.items():
        session.execute(_statement(table, many and len(values) > 1), values)
    return len(rows)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    write_pending(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    # The root transaction is committing (a savepoint's release keeps its rows
    # buffered, so a batch with savepoints still writes them in one INSERT).
    if session.get_nested_transaction() is None and (pending_count(session) or has_writes_at_commit(session)):
        # What is left to write goes with the COMMIT, in one round trip on PostgreSQL.
        with commit_round_trip(session) as pipelined:
            run_at_commit(session)
            write_pending(session, pipelined=pipelined)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending: _Pending | None = session.info.get(PENDING_KEY)
    if pending is None:
        return
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        if pending.rows:  # only an emit from inside the commit's own flush gets here
            log.error("%d events emitted while the session committed were not written", len(pending.rows))
        return
    # A released savepoint: what was written inside it now belongs to its parent.
    parent = _boundary(savepoint.parent) if savepoint.parent is not None else None
    moved: list[tuple[SessionTransaction, _Row]] = []
    for where, row in pending.written_in:
        if where is not savepoint:
            moved.append((where, row))
        elif parent is not None and parent.nested and not _within(row.emitted_in, parent):
            moved.append((parent, row))
    pending.written_in = moved


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    pending: _Pending | None = session.info.get(PENDING_KEY)
    if pending is None:
        return
    undone = _boundary(previous)
    if undone.parent is None:
        pending.rows.clear()
        pending.written_in.clear()
        return
    # A savepoint rolled back: its events go; rows emitted outside it but written
    # inside it are buffered again, in emit order.
    again = [
        r for where, r in pending.written_in if _within(where, undone) and not _within(r.emitted_in, undone)
    ]
    pending.written_in = [(where, r) for where, r in pending.written_in if not _within(where, undone)]
    kept = [r for r in pending.rows if not _within(r.emitted_in, undone)]
    pending.rows = sorted(kept + again, key=lambda r: r.seq)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # Committed rows were written in before_commit: anything left was rolled back.
        session.info.pop(PENDING_KEY, None)

"""Set-based bulk import on PostgreSQL: a chunk of validated rows in a handful of statements.

The importer (``inventory.importer``) validates every row with the REST schemas and calls
these once per chunk, inside the chunk's transaction. They do what ``catalog.upsert_item``
and ``stock.adjust`` (with a ``counted`` quantity) do for one row, for a whole chunk: the
rows are copied (``COPY``) into a temporary staging table and merged with one statement per
step, the ledger and outbox rows are written with ``COPY`` too, and the outcome of every row
comes back by line: the outcome's name, or the :class:`Problem` the row-by-row path raises
for it, with the same wording.

A chunk's rows must have distinct keys (the importer reports a repeated SKU): each
statement touches a row at most once. Lock order: items by id; stock levels by
(item id, warehouse id), the order every reservation path takes them in
(``domain.reservations``), so an import cannot deadlock with the saga.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from logistics_shared.db import begin_now
from logistics_shared.errors import Conflict, InvalidField, Problem
from logistics_shared.events.envelope import Envelope
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox

from ..models import outbox as outbox_table
from .catalog import item_event
from .common import level_body, utcnow
from .stock import emit_if_low

#: (line, validated data, the columns the file gave) of one row.
Row = tuple[int, dict[str, Any], frozenset[str]]
#: line -> the row's outcome (``created``, ``adjusted``, ...) or why it failed.
Outcomes = dict[int, str | Problem]
#: An outbox row as COPY writes it: event id, type, version, payload, created at.
OutboxRow = tuple[str, str, int, str, datetime]


def is_supported(session: Session) -> bool:
    """Set-based import needs PostgreSQL (``COPY``, row locks); elsewhere import row by row."""
    return session.get_bind().dialect.name == "postgresql"


# --- writing with COPY ------------------------------------------------------------------
def _copy(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` on the session's connection, in its transaction."""
    begin_now(session.connection())  # a pending BEGIN goes first: COPY bypasses SQLAlchemy
    connection = session.connection().connection.driver_connection
    assert connection is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


class BufferedOutbox(Outbox):
    """An :class:`Outbox` that keeps the rows of the events it emits in :attr:`rows`, for one
    ``COPY`` later, instead of writing them; each is validated as it is emitted, as always."""

    def __init__(self, session: Session) -> None:
        super().__init__(session, outbox_table, producer="inventory")
        self.rows: list[OutboxRow] = []

    def emit(self, type: str, data: dict[str, Any], version: int = 1) -> Envelope:
        envelope, row = self.build(type, data, version)
        self.rows.append(
            (row["event_id"], row["event_type"], row["event_version"], row["payload"], row["created_at"])
        )
        return envelope


_OUTBOX_COLUMNS = ("event_id", "event_type", "event_version", "payload", "created_at")


# --- items ------------------------------------------------------------------------------
_ITEMS_STAGING = text(
    """
    CREATE TEMPORARY TABLE import_items (
        line integer PRIMARY KEY,
        sku varchar(64) NOT NULL UNIQUE,
        name varchar(200) NOT NULL,
        unit_weight_g integer NOT NULL,
        length_mm integer NOT NULL,
        width_mm integer NOT NULL,
        height_mm integer NOT NULL,
        reorder_point integer  -- NULL: not in the row, so an existing item keeps its own
    ) ON COMMIT DROP
    """
)
_ITEM_COLUMNS = (
    "line",
    "sku",
    "name",
    "unit_weight_g",
    "length_mm",
    "width_mm",
    "height_mm",
    "reorder_point",
)

# FOR NO KEY UPDATE, as the UPDATE itself takes: it does not block the KEY SHARE locks that a
# reservation's lines or a movement take on their item.
_LOCK_ITEMS = text(
    "SELECT s.line FROM import_items s JOIN items i ON i.sku = s.sku ORDER BY i.id FOR NO KEY UPDATE OF i"
)

# Only what differs is an update (a new version); the rest is unchanged, as upsert_item says.
_UPDATE_ITEMS = text(
    """
    UPDATE items AS i
    SET name = s.name, unit_weight_g = s.unit_weight_g, length_mm = s.length_mm,
        width_mm = s.width_mm, height_mm = s.height_mm,
        reorder_point = COALESCE(s.reorder_point, i.reorder_point),
        version = i.version + 1, updated_at = :now
    FROM import_items s
    WHERE i.sku = s.sku
      AND (i.name, i.unit_weight_g, i.length_mm, i.width_mm, i.height_mm, i.reorder_point)
          IS DISTINCT FROM
          (s.name, s.unit_weight_g, s.length_mm, s.width_mm, s.height_mm,
           COALESCE(s.reorder_point, i.reorder_point))
    RETURNING s.line, i.sku, i.name, i.unit_weight_g, i.length_mm, i.width_mm, i.height_mm, i.version
    """
)

_INSERT_ITEMS = text(
    """
    INSERT INTO items (sku, name, unit_weight_g, length_mm, width_mm, height_mm, reorder_point,
                       version, created_at, updated_at)
    SELECT s.sku, s.name, s.unit_weight_g, s.length_mm, s.width_mm, s.height_mm,
           COALESCE(s.reorder_point, 0), 1, :now, :now
    FROM import_items s
    WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.sku = s.sku)
    ORDER BY s.line
    ON CONFLICT (sku) DO NOTHING
    RETURNING sku, name, unit_weight_g, length_mm, width_mm, height_mm, version
    """
)


def upsert_items(session: Session, _actor: Identity, rows: Sequence[Row]) -> Outcomes:
    """``catalog.upsert_item`` for every row: ``created``, ``updated`` or ``unchanged``.

    A reorder point the row does not give is left as it is on an existing item (0 on a new
    one). An item that another transaction creates meanwhile is the same conflict as when
    ``create_item`` loses that race.
    """
    if not rows:
        return {}
    now = utcnow()
    session.execute(_ITEMS_STAGING)
    _copy(
        session,
        "import_items",
        _ITEM_COLUMNS,
        (
            (
                line,
                data["sku"],
                data["name"],
                data["unit_weight_g"],
                data["length_mm"],
                data["width_mm"],
                data["height_mm"],
                data["reorder_point"] if "reorder_point" in given else None,
            )
            for line, data, given in rows
        ),
    )
    existing = set(session.execute(_LOCK_ITEMS).scalars())
    updated = {row.line: row for row in session.execute(_UPDATE_ITEMS, {"now": now})}
    created = {row.sku: row for row in session.execute(_INSERT_ITEMS, {"now": now})}
    outcomes: Outcomes = {}
    # item.created / item.updated, as catalog.create_item and update_item emit them, in line order.
    outbox = BufferedOutbox(session)
    for line, data, _given in rows:
        if line in updated:
            outcomes[line] = "updated"
            outbox.emit("item.updated", item_event(updated[line]._asdict()))
        elif line in existing:
            outcomes[line] = "unchanged"
        elif data["sku"] in created:
            outcomes[line] = "created"
            outbox.emit("item.created", item_event(created[data["sku"]]._asdict()))
        else:
            outcomes[line] = Conflict(f"An item with SKU {data['sku']!r} already exists.")
    if outbox.rows:
        _copy(session, "outbox", _OUTBOX_COLUMNS, outbox.rows)
    return outcomes


# --- counted stock ----------------------------------------------------------------------
_COUNTS_STAGING = text(
    """
    CREATE TEMPORARY TABLE import_counts (
        line integer PRIMARY KEY,
        warehouse_id integer NOT NULL,
        sku varchar(64) NOT NULL,
        UNIQUE (warehouse_id, sku)
    ) ON COMMIT DROP
    """
)

# What ensure_stock_level does, for the chunk: a missing level starts at zero.
_ENSURE_LEVELS = text(
    """
    INSERT INTO stock_levels (item_id, warehouse_id, on_hand, reserved)
    SELECT i.id, s.warehouse_id, 0, 0
    FROM import_counts s JOIN items i ON i.sku = s.sku
    WHERE NOT EXISTS (
        SELECT 1 FROM stock_levels l WHERE l.item_id = i.id AND l.warehouse_id = s.warehouse_id
    )
    ORDER BY i.id, s.warehouse_id
    ON CONFLICT (item_id, warehouse_id) DO NOTHING
    """
)

# The levels as they are now, read without locks: the chunk is planned (and its events built
# and validated) before any level is locked, so the locks are held for the writes alone.
_READ_LEVELS = text(
    """
    SELECT s.line, l.id, l.item_id, l.warehouse_id, l.on_hand, l.reserved, i.sku, i.reorder_point
    FROM import_counts s
    JOIN items i ON i.sku = s.sku
    JOIN stock_levels l ON l.item_id = i.id AND l.warehouse_id = s.warehouse_id
    """
)

# Then locked in the global order, and read again: a reservation may have changed one meanwhile.
_LOCK_LEVELS = text(
    """
    SELECT s.line, l.on_hand, l.reserved
    FROM import_counts s
    JOIN items i ON i.sku = s.sku
    JOIN stock_levels l ON l.item_id = i.id AND l.warehouse_id = s.warehouse_id
    ORDER BY l.item_id, l.warehouse_id
    FOR UPDATE OF l
    """
)

_SET_ON_HAND = text(
    """
    UPDATE stock_levels AS l SET on_hand = u.on_hand
    FROM unnest(CAST(:ids AS integer[]), CAST(:on_hand AS integer[])) AS u(id, on_hand)
    WHERE l.id = u.id
    """
)

_WAREHOUSES = text("SELECT id, code FROM warehouses WHERE code = ANY(:codes)")

_MOVEMENT_IDS = text("SELECT nextval(pg_get_serial_sequence('movements', 'id')) FROM generate_series(1, :n)")
_MOVEMENT_COLUMNS = (
    "id",
    "item_id",
    "warehouse_id",
    "kind",
    "quantity",
    "reason",
    "note",
    "actor",
    "created_at",
)


@dataclass
class _Count:
    """What one counted row does to its level, given the level's ``on_hand`` and ``reserved``."""

    line: int
    data: dict[str, Any]
    level: Any  # the level's ids, its item's SKU and reorder point
    on_hand: int
    reserved: int
    outcome: str | Problem = "unchanged"
    movement_id: int | None = None
    events: list[OutboxRow] = field(default_factory=list)


class _MovementIds:
    """Movement ids from the sequence, drawn ahead in one round trip, handed out in order."""

    def __init__(self, session: Session, expected: int) -> None:
        self.session = session
        self.ids = self._draw(expected)

    def _draw(self, n: int) -> list[int]:
        return sorted(self.session.execute(_MOVEMENT_IDS, {"n": n}).scalars()) if n else []

    def take(self) -> int:
        if not self.ids:  # a row that the plan did not expect to change now does
            self.ids = self._draw(1)
        return self.ids.pop(0)


def apply_counts(session: Session, actor: Identity, rows: Sequence[Row]) -> Outcomes:
    """``stock.adjust`` with a counted quantity for every row: ``adjusted`` or ``unchanged``.

    Every changed level gets its adjustment movement and its ``stock.adjusted`` event (and
    ``stock.low`` when available crosses the reorder point), in line order. The rows are
    planned, and their events built and validated, on the levels as read without locks;
    then the levels are locked (in the global order) and read again, and only a row whose
    level changed meanwhile is planned again. So the locks are held for the writes alone.
    """
    if not rows:
        return {}
    outcomes: Outcomes = {}
    codes = sorted({data["warehouse"] for _line, data, _given in rows})
    known = {
        code: warehouse_id
        for warehouse_id, code in session.execute(_WAREHOUSES, {"codes": codes})
        if actor.can_access_warehouse(code)
    }
    staged: dict[int, tuple[dict[str, Any], int]] = {}
    for line, data, _given in rows:
        warehouse_id = known.get(data["warehouse"])
        if warehouse_id is None:
            outcomes[line] = InvalidField("/warehouse", f"Unknown warehouse {data['warehouse']!r}.")
        else:
            staged[line] = (data, warehouse_id)
    if not staged:
        return outcomes

    session.execute(_COUNTS_STAGING)
    _copy(
        session,
        "import_counts",
        ("line", "warehouse_id", "sku"),
        ((line, warehouse_id, data["sku"]) for line, (data, warehouse_id) in staged.items()),
    )
    session.execute(_ENSURE_LEVELS)

    levels = {row.line: row for row in session.execute(_READ_LEVELS)}
    counts: dict[int, _Count] = {}
    for line, (data, _warehouse_id) in staged.items():
        level = levels.get(line)
        if level is None:
            outcomes[line] = InvalidField("/sku", f"Unknown SKU {data['sku']!r}.")
        else:
            counts[line] = _Count(line, data, level, level.on_hand, level.reserved)
    expected = sum(c.reserved <= c.data["counted"] != c.on_hand for c in counts.values())
    ids = _MovementIds(session, expected)
    for count in counts.values():
        _plan(count, session, ids)

    # The ledger rows and the events first, in a savepoint, while no level is locked yet;
    # then the levels are locked, and if none changed since they were read, that is all.
    savepoint = session.begin_nested()
    _write_ledger(session, actor, counts.values())
    current = _lock_levels(session)
    if all(current[c.line] == (c.on_hand, c.reserved) for c in counts.values()):
        savepoint.commit()
    else:
        # A reservation (or an issue) changed a level in between. Rolling back to the
        # savepoint releases the locks taken since, too: lock again (in order), plan the
        # rows whose level changed again, and write the ledger and the events under the locks.
        savepoint.rollback()
        current = _lock_levels(session)
        for count in counts.values():
            if current[count.line] != (count.on_hand, count.reserved):
                count.on_hand, count.reserved = current[count.line]
                _plan(count, session, ids)
        _write_ledger(session, actor, counts.values())
    changed = [count for count in counts.values() if count.outcome == "adjusted"]
    if changed:
        session.execute(
            _SET_ON_HAND,
            {"ids": [c.level.id for c in changed], "on_hand": [c.data["counted"] for c in changed]},
        )
    outcomes.update({line: count.outcome for line, count in counts.items()})
    return outcomes


def _lock_levels(session: Session) -> dict[int, tuple[int, int]]:
    """Lock the chunk's levels in the global order; line -> (on_hand, reserved) as locked."""
    return {line: (on_hand, reserved) for line, on_hand, reserved in session.execute(_LOCK_LEVELS)}


def _plan(count: _Count, session: Session, ids: _MovementIds) -> None:
    """Decide the row as ``stock.adjust`` would on these figures, and build its events."""
    data, level = count.data, count.level
    counted = data["counted"]
    count.events = []
    if counted < count.reserved:
        count.outcome = Conflict(
            f"Counted {counted} is below the {count.reserved} units reserved; release reservations first.",
            reserved=count.reserved,
        )
        return
    if counted == count.on_hand:
        count.outcome = "unchanged"
        return
    count.outcome = "adjusted"
    if count.movement_id is None:
        count.movement_id = ids.take()
    delta = counted - count.on_hand
    outbox = BufferedOutbox(session)
    stock = level_body(level.sku, data["warehouse"], counted, count.reserved)
    outbox.emit(
        "stock.adjusted",
        {
            **stock,
            "delta": delta,
            "reason": data["reason"],
            "note": data.get("note"),
            "movement_id": count.movement_id,
            "location": None,
            "reference": None,
        },
    )
    emit_if_low(
        outbox,
        sku=level.sku,
        warehouse=data["warehouse"],
        reorder_point=level.reorder_point,
        on_hand=counted,
        reserved=count.reserved,
        before_available=count.on_hand - count.reserved,
    )
    count.events = outbox.rows


def _write_ledger(session: Session, actor: Identity, counts: Iterable[_Count]) -> None:
    """The adjustment movements and the events of the rows that change their level, in line order."""
    changed = [count for count in counts if count.outcome == "adjusted"]
    if not changed:
        return
    now = utcnow()
    _copy(
        session,
        "movements",
        _MOVEMENT_COLUMNS,
        (
            (
                c.movement_id,
                c.level.item_id,
                c.level.warehouse_id,
                "adjustment",
                c.data["counted"] - c.on_hand,
                c.data["reason"],
                c.data.get("note"),
                actor.actor,
                now,
            )
            for c in changed
        ),
    )
    # COPY fires the outbox's statement-level trigger too: its NOTIFY wakes the relay at commit.
    _copy(session, "outbox", _OUTBOX_COLUMNS, (event for c in changed for event in c.events))

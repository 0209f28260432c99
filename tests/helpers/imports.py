"""The bulk import's tests: a database's visible outputs side by side, reservations racing an import.

``outputs`` is everything an import leaves behind that a person or another service
sees (the ledger, the outbox events, the levels, the items), in a form two databases
can be compared with row by row. ``Reservers`` keeps the saga's side of inventory
busy on the same stock levels while an import runs.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from inventory.domain import reservations
from inventory.models import outbox as outbox_table
from logistics_shared.errors import Conflict
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox

_MOVEMENTS = """
    SELECT m.id, w.code, i.sku, m.location_id, m.kind, m.quantity, m.reason, m.note, m.reference,
           m.reservation_id, m.actor
    FROM movements m JOIN items i ON i.id = m.item_id JOIN warehouses w ON w.id = m.warehouse_id
    ORDER BY m.id
"""
_LEVELS = """
    SELECT w.code, i.sku, s.on_hand, s.reserved
    FROM stock_levels s JOIN items i ON i.id = s.item_id JOIN warehouses w ON w.id = s.warehouse_id
    ORDER BY w.code, i.sku
"""
_ITEMS = """
    SELECT sku, name, unit_weight_g, length_mm, width_mm, height_mm, reorder_point, version
    FROM items ORDER BY sku
"""


def outputs(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The ledger, the outbox, the stock levels and the items, each as a list of rows.

    Events are in outbox order, each as (type, version, producer, data): its envelope id,
    correlation id and timestamp are new for every event, and its outbox id comes from a
    sequence that a rolled-back write may or may not have advanced.
    """
    with engine.connect() as conn:
        events = []
        for event_type, version, payload in conn.execute(
            text("SELECT event_type, event_version, payload FROM outbox ORDER BY id")
        ):
            envelope = orjson.loads(payload)
            assert (envelope["type"], envelope["version"]) == (event_type, version)
            events.append((event_type, version, envelope["producer"], envelope["data"]))
        return {
            "movements": [tuple(row) for row in conn.execute(text(_MOVEMENTS))],
            "events": events,
            "levels": [tuple(row) for row in conn.execute(text(_LEVELS))],
            "items": [tuple(row) for row in conn.execute(text(_ITEMS))],
        }


def assert_same_outputs(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> None:
    """Row by row, so that a difference names the first row that differs."""
    for name in a:
        assert len(a[name]) == len(b[name]), f"{name}: {len(a[name])} rows vs {len(b[name])}"
        for index, (left, right) in enumerate(zip(a[name], b[name], strict=True)):
            assert left == right, f"{name} row {index}:\n  {left}\n  {right}"


def new_rows(after: dict[str, list[Any]], before: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``outputs`` less the ledger rows and events that were there ``before`` (append-only)."""
    return {
        name: rows[len(before[name]) :] if name in ("movements", "events") else rows
        for name, rows in after.items()
    }


def deadlocks(engine: Engine, timeout: float = 10.0) -> int:
    """Deadlocks PostgreSQL has detected in this database so far.

    A backend reports its statistics for good when it exits: call this after the
    engines are disposed; it waits until the other backends of the database are gone.
    """
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while conn.execute(text(_OTHER_BACKENDS)).scalar_one() and time.monotonic() < deadline:
            time.sleep(0.05)
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        return int(
            conn.execute(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


_OTHER_BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


class Reservers:
    """``threads`` threads reserving, releasing and consuming stock on ``skus`` in ``warehouse``
    until stopped, as the saga's handlers do, each on its own connection.

    A shortage (409) is an expected outcome; anything else is kept in ``errors``.
    """

    def __init__(
        self,
        factory: Callable[[], Session],
        actor: Identity,
        warehouse: str,
        skus: list[str],
        threads: int = 4,
        seed: int = 11,
    ) -> None:
        self.factory, self.actor, self.warehouse, self.skus = factory, actor, warehouse, skus
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"reserved": 0, "released": 0, "consumed": 0, "shortage": 0}
        self.errors: list[BaseException] = []
        self.started = threading.Barrier(threads + 1)
        self.threads = [
            threading.Thread(target=self._run, args=(random.Random(seed + n), n), daemon=True)
            for n in range(threads)
        ]

    def __enter__(self) -> Reservers:
        for thread in self.threads:
            thread.start()
        self.started.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in self.threads), "a reserver thread hung"

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def _run(self, rng: random.Random, n: int) -> None:
        held: list[str] = []
        self.started.wait(10)
        k = 0
        while not self.stop.is_set():
            k += 1
            try:
                if held and rng.random() < 0.4:
                    reservation_id = held.pop(rng.randrange(len(held)))
                    close = rng.choice((reservations.release, reservations.consume))
                    self._in_transaction(close, reservation_id)
                    self._count("released" if close is reservations.release else "consumed")
                else:
                    # Lines in any order: reserve() locks the levels by item id whatever the order.
                    lines = [
                        {"sku": sku, "quantity": rng.randint(1, 3)}
                        for sku in rng.sample(self.skus, rng.randint(1, min(4, len(self.skus))))
                    ]
                    data = {
                        "warehouse": self.warehouse,
                        "reference": f"R-{n}-{k}",
                        "lines": lines,
                        "expires_at": None,
                    }
                    held.append(self._in_transaction(reservations.reserve, data)["id"])
                    self._count("reserved")
            except Conflict:
                self._count("shortage")
            except BaseException as exc:  # a deadlock (OperationalError) is what this is here to catch
                with self.lock:
                    self.errors.append(exc)
                return

    def _in_transaction(self, action: Callable[[Session, Outbox, Identity, Any], Any], argument: Any) -> Any:
        with self.factory() as session, session.begin():
            outbox = Outbox(session, outbox_table, producer="inventory")
            return action(session, outbox, self.actor, argument)

"""Invariants asserted straight from the database after every interesting step."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text


def assert_inventory_invariants(engine: Any) -> None:
    with engine.connect() as conn:
        mismatches = conn.execute(
            text(
                """
                SELECT s.item_id, s.warehouse_id, s.on_hand, COALESCE(SUM(m.quantity), 0) AS ledger
                FROM stock_levels s
                LEFT JOIN movements m ON m.item_id = s.item_id AND m.warehouse_id = s.warehouse_id
                GROUP BY s.item_id, s.warehouse_id, s.on_hand
                HAVING s.on_hand <> COALESCE(SUM(m.quantity), 0)
                """
            )
        ).all()
        assert mismatches == [], f"on_hand != sum(movements): {mismatches}"
        bad = conn.execute(
            text(
                "SELECT item_id, warehouse_id, on_hand, reserved FROM stock_levels "
                "WHERE reserved < 0 OR reserved > on_hand OR on_hand < 0"
            )
        ).all()
        assert bad == [], f"0 <= reserved <= on_hand violated: {bad}"
        held = conn.execute(
            text(
                """
                SELECT s.item_id, s.warehouse_id, s.reserved, COALESCE(SUM(l.quantity), 0) AS held
                FROM stock_levels s
                LEFT JOIN reservations r ON r.warehouse_id = s.warehouse_id AND r.status = 'active'
                LEFT JOIN reservation_lines l ON l.reservation_id = r.id AND l.item_id = s.item_id
                GROUP BY s.item_id, s.warehouse_id, s.reserved
                HAVING s.reserved <> COALESCE(SUM(l.quantity), 0)
                """
            )
        ).all()
        assert held == [], f"reserved != sum(active reservation lines): {held}"
        for (payload,) in conn.execute(text("SELECT payload FROM outbox")):
            envelope = orjson.loads(payload)
            assert envelope["producer"] == "inventory"


def outbox_types(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


def stock_outbox_types(engine: Any) -> list[str]:
    """The outbox's ``stock.*`` events in order, without the catalogue's ``item.*`` and
    ``warehouse.*`` ones that seeding a test's warehouses and items writes."""
    return [kind for kind in outbox_types(engine) if kind.startswith("stock.")]


def row_counts(
    engine: Any,
    tables: tuple[str, ...] = (
        "items",
        "warehouses",
        "locations",
        "stock_levels",
        "movements",
        "reservations",
        "reservation_lines",
        "outbox",
        "idempotency_keys",
    ),
) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in tables}

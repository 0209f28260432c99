"""Hypothesis state machine over the stock ledger and reservations.

Random sequences of receipts, adjustments, transfers, reservations, releases,
consumptions and expiries run through the service layer; after every step the
database is re-read: on_hand == sum(movements), 0 <= reserved <= on_hand,
reserved == sum(active reservation lines), and the outbox holds exactly the
events the model expects. The CI profile runs fewer examples (conftest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule
from sqlalchemy import text

from inventory.domain import reservations, stock
from inventory.models import outbox as outbox_table
from logistics_shared.errors import Conflict
from logistics_shared.identity import SYSTEM
from logistics_shared.outbox import Outbox

from ..invariants import assert_inventory_invariants
from .conftest import seed

WAREHOUSES = ("AMS", "RTM")
SKUS = ("SKU-1", "SKU-2")
REASONS = ("count", "damage", "found")


def build_machine(client):
    factory = client.registry["dbsession_factory"]
    engine = client.engine

    class Ledger(RuleBasedStateMachine):
        reservations_ = Bundle("reservations")

        def __init__(self) -> None:
            super().__init__()
            with engine.begin() as conn:
                # A clean slate per example; the append-only trigger is for
                # application code, the test harness may reset its own database.
                if engine.dialect.name == "postgresql":
                    conn.execute(text("ALTER TABLE movements DISABLE TRIGGER movements_append_only"))
                    conn.execute(
                        text("TRUNCATE movements, reservation_lines, reservations, stock_levels, outbox")
                    )
                    conn.execute(text("ALTER TABLE movements ENABLE TRIGGER movements_append_only"))
                else:
                    conn.execute(text("DROP TRIGGER movements_no_delete"))
                    for table in ("movements", "reservation_lines", "reservations", "stock_levels", "outbox"):
                        conn.execute(text(f"DELETE FROM {table}"))
                    conn.execute(
                        text(
                            "CREATE TRIGGER movements_no_delete BEFORE DELETE ON movements "
                            "BEGIN SELECT RAISE(ABORT, 'the movement ledger is append-only'); END"
                        )
                    )
            self.on_hand = {(w, s): 0 for w in WAREHOUSES for s in SKUS}
            self.reserved = dict.fromkeys(self.on_hand, 0)
            self.active: dict[str, tuple[str, dict[str, int]]] = {}
            self.events = 0

        def run(self, action, data) -> bool:
            with factory() as session:
                try:
                    action(session, Outbox(session, outbox_table, producer="inventory"), SYSTEM, data)
                    session.commit()
                    return True
                except Conflict:
                    session.rollback()
                    return False

        def available(self, key) -> int:
            return self.on_hand[key] - self.reserved[key]

        @rule(w=st.sampled_from(WAREHOUSES), s=st.sampled_from(SKUS), q=st.integers(1, 20))
        def receive(self, w, s, q):
            assert self.run(stock.receive, {"warehouse": w, "sku": s, "quantity": q, "location": None})
            self.on_hand[(w, s)] += q
            self.events += 1

        @rule(
            w=st.sampled_from(WAREHOUSES),
            s=st.sampled_from(SKUS),
            d=st.integers(-15, 15).filter(bool),
            reason=st.sampled_from(REASONS),
        )
        def adjust_delta(self, w, s, d, reason):
            ok = self.run(
                stock.adjust, {"warehouse": w, "sku": s, "delta": d, "counted": None, "reason": reason}
            )
            expected = self.on_hand[(w, s)] + d >= self.reserved[(w, s)]
            assert ok == expected
            if ok:
                before = self.available((w, s))
                self.on_hand[(w, s)] += d
                self.events += 1 + (before >= 3 > self.available((w, s)))  # stock.low at reorder point 3

        @rule(w=st.sampled_from(WAREHOUSES), s=st.sampled_from(SKUS), c=st.integers(0, 30))
        def count(self, w, s, c):
            ok = self.run(
                stock.adjust, {"warehouse": w, "sku": s, "counted": c, "delta": None, "reason": "count"}
            )
            assert ok == (c >= self.reserved[(w, s)])
            if ok and c != self.on_hand[(w, s)]:
                before = self.available((w, s))
                self.on_hand[(w, s)] = c
                self.events += 1 + (before >= 3 > self.available((w, s)))

        @rule(s=st.sampled_from(SKUS), q=st.integers(1, 15), forward=st.booleans())
        def transfer(self, s, q, forward):
            src, dst = WAREHOUSES if forward else WAREHOUSES[::-1]
            ok = self.run(
                stock.transfer, {"from_warehouse": src, "to_warehouse": dst, "sku": s, "quantity": q}
            )
            assert ok == (self.available((src, s)) >= q)
            if ok:
                before = self.available((src, s))
                self.on_hand[(src, s)] -= q
                self.on_hand[(dst, s)] += q
                self.events += 1 + (before >= 3 > self.available((src, s)))

        @rule(
            target=reservations_,
            w=st.sampled_from(WAREHOUSES),
            lines=st.dictionaries(st.sampled_from(SKUS), st.integers(1, 10), min_size=1),
        )
        def reserve(self, w, lines):
            data = {
                "warehouse": w,
                "reference": "ref",
                "expires_at": None,
                "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
            }
            with factory() as session:
                try:
                    made = reservations.reserve(
                        session, Outbox(session, outbox_table, producer="inventory"), SYSTEM, data
                    )
                    session.commit()
                except Conflict:
                    session.rollback()
                    made = None
            fits = all(self.available((w, s)) >= q for s, q in lines.items())
            assert (made is not None) == fits
            if made is None:
                return "none"
            lows = 0
            for s, q in lines.items():
                before = self.available((w, s))
                self.reserved[(w, s)] += q
                lows += before >= 3 > self.available((w, s))
            self.active[made["id"]] = (w, dict(lines))
            self.events += 1 + lows
            return made["id"]

        @rule(rid=consumes(reservations_), consume=st.booleans())
        def close(self, rid, consume):
            if rid not in self.active:
                return
            action = reservations.consume if consume else reservations.release
            with factory() as session:
                action(session, Outbox(session, outbox_table, producer="inventory"), SYSTEM, rid)
                session.commit()
            w, lines = self.active.pop(rid)
            for s, q in lines.items():
                self.reserved[(w, s)] -= q
                if consume:
                    self.on_hand[(w, s)] -= q
            self.events += 1

        @rule(rid=consumes(reservations_))
        def expire(self, rid):
            if rid not in self.active:
                return
            past = datetime.now(UTC) - timedelta(seconds=1)
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE reservations SET expires_at = :t WHERE id = :id"), {"t": past, "id": rid}
                )
            with factory() as session, session.begin():
                assert (
                    reservations.expire_due(session, Outbox(session, outbox_table, producer="inventory")) == 1
                )
            w, lines = self.active.pop(rid)
            for s, q in lines.items():
                self.reserved[(w, s)] -= q
            self.events += 1

        @invariant()
        def database_matches_model(self):
            assert_inventory_invariants(engine)
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT w.code, i.sku, s.on_hand, s.reserved FROM stock_levels s "
                        "JOIN items i ON i.id = s.item_id JOIN warehouses w ON w.id = s.warehouse_id"
                    )
                ).all()
                outbox_rows = conn.execute(text("SELECT COUNT(*) FROM outbox")).scalar_one()
            for code, sku, on_hand, reserved in rows:
                assert (on_hand, reserved) == (self.on_hand[(code, sku)], self.reserved[(code, sku)])
            assert outbox_rows == self.events

    return Ledger


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_ledger_state_machine(service_client, backend):
    from hypothesis.stateful import run_state_machine_as_test

    client = service_client("inventory", backend)
    seed(client)
    run_state_machine_as_test(build_machine(client))

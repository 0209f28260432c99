"""Every sort and filter of ``GET /v1/shipments`` is served by an index: the statement the
domain builds, EXPLAINed on PostgreSQL over 100,000 read-model rows (first page and a
later one)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from logistics_shared.identity import Identity
from logistics_shared.schemas import encode_cursor
from logistics_shared.security import Role
from support.domain.shipment_list import SORTS, statement

pytestmark = pytest.mark.postgres

ROWS = 100_000
AGENT = Identity("agent", Role.SUPPORT_AGENT)
STATUSES = ("awaiting_stock", "ready", "on_hold", "label_purchased", "in_transit", "delivered", "cancelled")


def fill(conn) -> None:
    statuses = "ARRAY[" + ",".join(f"'{s}'" for s in STATUSES) + "]"
    conn.execute(
        text(
            f"""
            INSERT INTO shipment_view (shipment_id, reference, warehouse, status, tracking_number,
                                       tracking, updated_at, version)
            SELECT md5(i::text)::uuid::text, 'R-' || (i % 40000), 'W' || (i % 20),
                   ({statuses})[1 + i % {len(STATUSES)}], 'TN' || i, '[]',
                   timestamptz '2026-01-01' + i * interval '1 minute', 1
            FROM generate_series(1, {ROWS}) AS i
            """
        )
    )
    conn.execute(text("ANALYZE shipment_view"))


def plan(conn, stmt) -> str:
    compiled = stmt.compile(dialect=conn.dialect)
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()
    return "\n".join(r[0] for r in rows)


CURSORS = {
    "-updated_at": ("2026-02-01T00:00:00+00:00", "8"),
    "updated_at": ("2026-02-01T00:00:00+00:00", "8"),
    "reference": ("R-2000", "8"),
    "-reference": ("R-2000", "8"),
}

FILTERS = [
    {},
    {"status": "in_transit"},
    {"warehouse": "W7"},
    {"reference": "R-1234"},
    {"tracking_number": "TN777"},
    {"since": datetime(2026, 2, 1, tzinfo=UTC), "until": datetime(2026, 2, 3, tzinfo=UTC)},
]


#: The filters after which a sort's index still gives the order (the others pick their few
#: rows by their own index and sort those: a reference or tracking number has a handful).
ORDERED = {"status", "warehouse", "since", "until"}


@pytest.mark.fresh_app
def test_every_sort_and_filter_is_an_index_scan_at_100000_rows(service_client):
    sup = service_client("support", "postgres")
    with sup.engine.begin() as conn:
        fill(conn)
    with sup.engine.connect() as conn:
        for sort in SORTS:
            for filters in FILTERS:
                for cursor in (None, encode_cursor(sort, *CURSORS[sort])):
                    shown = plan(conn, statement(AGENT, filters, sort, cursor, 51))
                    where = (sort, filters, cursor, shown)
                    assert "Index" in shown and "Seq Scan" not in shown, where
                    if set(filters) <= ORDERED:
                        # The index gives the order: no sort of the matching rows at all.
                        assert "Sort" not in shown, where

"""The test fixture itself: a test's writes are visible to every path of the app, and
nothing reaches the worker's database for real (the test's transaction rolls back)."""

from __future__ import annotations

import pytest

from ..helpers.transactional import ConnectionEngine
from ..inventory.conftest import seed


@pytest.fixture(params=["sqlite", "postgres"])
def inv(service_client, request):
    return service_client("inventory", request.param)


def committed_count(client, table: str) -> int:
    """Rows of ``table`` as another connection sees them (committed rows only)."""
    # A raw DBAPI connection: SQLAlchemy's begin hook would take SQLite's write lock,
    # which the test's own transaction holds; a plain read needs none.
    raw = client.engine.real.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        (count,) = cursor.fetchone()
        raw.rollback()
        return count
    finally:
        raw.close()


def test_a_get_sees_what_the_same_test_wrote_and_nothing_is_committed(inv):
    assert isinstance(inv.engine, ConnectionEngine)
    seed(inv)
    admin = inv.as_()
    created = admin.post_json(
        "/v1/receipts",
        {"warehouse": "AMS", "sku": "SKU-1", "quantity": 4},
        headers={"Idempotency-Key": "k-1"},
    )
    assert created.status_int == 201
    # The read path (an autocommit engine of its own in production) sees the uncommitted row.
    level = admin.get("/v1/stock?warehouse=AMS&sku=SKU-1").json["items"]
    assert [(row["sku"], row["on_hand"]) for row in level] == [("SKU-1", 4)]
    # The idempotency key's own short transaction ran on the test's connection too.
    replay = admin.post_json(
        "/v1/receipts",
        {"warehouse": "AMS", "sku": "SKU-1", "quantity": 4},
        headers={"Idempotency-Key": "k-1"},
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    for table in ("movements", "stock_levels", "idempotency_keys", "outbox", "items", "warehouses"):
        assert committed_count(inv, table) == 0, f"{table} was committed for real"

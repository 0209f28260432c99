"""Concurrency on PostgreSQL: no oversell, no deadlock, invariants intact.

SQLite serialises writers and so proves nothing here; these run on the
machine's PostgreSQL (skipped without it, failed under LOGISTICS_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from webtest.http import StopableWSGIServer

from inventory.domain import reservations, stock
from inventory.models import outbox as outbox_table
from logistics_shared.errors import Conflict
from logistics_shared.identity import SYSTEM
from logistics_shared.outbox import Outbox

from ..invariants import assert_inventory_invariants
from .conftest import receive, seed

pytestmark = pytest.mark.postgres

THREADS = 50


@pytest.fixture
def pg(service_client):
    client = service_client("inventory", "postgres", db_pool_size=THREADS + 5)
    seed(client)
    return client


def _race(factory, calls: list[tuple[Any, dict]]) -> Counter:
    """Start every call at the same instant, each on its own connection."""
    barrier = threading.Barrier(len(calls))

    def one(call):
        action, data = call
        with factory() as session:
            session.connection()  # check out the connection before the start line
            barrier.wait()
            try:
                action(session, Outbox(session, outbox_table, producer="inventory"), SYSTEM, data)
                session.commit()
                return "ok"
            except Conflict:
                session.rollback()
                return "conflict"

    with ThreadPoolExecutor(len(calls)) as pool:
        return Counter(pool.map(one, calls))


def _reserve(sku_quantities, reference="R"):
    return (
        reservations.reserve,
        {
            "warehouse": "AMS",
            "reference": reference,
            "lines": [{"sku": s, "quantity": q} for s, q in sku_quantities],
            "expires_at": None,
        },
    )


@pytest.mark.parametrize("stock_units", [1, 7])
def test_last_units_go_to_exactly_as_many_callers_as_there_is_stock(pg, stock_units):
    factory = pg.registry["dbsession_factory"]
    for round_ in range(10):
        receive(pg, "AMS", "SKU-1", stock_units)
        outcome = _race(factory, [_reserve([("SKU-1", 1)], f"r{round_}-{i}") for i in range(THREADS)])
        assert outcome == Counter(ok=stock_units, conflict=THREADS - stock_units), f"round {round_}"
        level = pg.as_().get("/v1/stock", {"sku": "SKU-1", "warehouse": "AMS"}).json["items"][0]
        assert level["available"] == 0 and level["reserved"] == level["on_hand"]
        assert_inventory_invariants(pg.engine)


def test_opposite_line_orders_never_deadlock(pg):
    factory = pg.registry["dbsession_factory"]
    receive(pg, "AMS", "SKU-1", 30)
    receive(pg, "AMS", "SKU-2", 30)
    calls = [
        _reserve([("SKU-1", 1), ("SKU-2", 1)] if i % 2 else [("SKU-2", 1), ("SKU-1", 1)], f"x{i}")
        for i in range(40)
    ]
    outcome = _race(factory, calls)
    assert outcome == Counter(ok=30, conflict=10)
    assert_inventory_invariants(pg.engine)


def test_mixed_concurrent_operations_keep_every_invariant(pg):
    factory = pg.registry["dbsession_factory"]
    receive(pg, "AMS", "SKU-1", 20)
    receive(pg, "RTM", "SKU-1", 20)
    receive(pg, "AMS", "SKU-2", 20)
    rng = random.Random(7)
    for _ in range(5):
        calls = []
        for i in range(30):
            kind = rng.choice(["reserve", "transfer", "adjust", "reserve2"])
            if kind == "reserve":
                calls.append(_reserve([("SKU-1", rng.randint(1, 4))], f"m{i}"))
            elif kind == "reserve2":
                calls.append(_reserve([("SKU-2", rng.randint(1, 3)), ("SKU-1", 1)], f"n{i}"))
            elif kind == "transfer":
                src, dst = rng.sample(["AMS", "RTM"], 2)
                calls.append(
                    (
                        stock.transfer,
                        {
                            "from_warehouse": src,
                            "to_warehouse": dst,
                            "sku": "SKU-1",
                            "quantity": rng.randint(1, 5),
                            "reference": None,
                        },
                    )
                )
            else:
                calls.append(
                    (
                        stock.adjust,
                        {
                            "warehouse": "AMS",
                            "sku": "SKU-1",
                            "delta": rng.choice([-2, 3]),
                            "counted": None,
                            "reason": "correction",
                            "location": None,
                        },
                    )
                )
        _race(factory, calls)
        assert_inventory_invariants(pg.engine)
        # Release some so the next round has stock to fight over.
        rows = pg.as_().get("/v1/reservations", {"status": "active", "limit": 200}).json["items"]
        for row in rows[::2]:
            pg.as_().post(f"/v1/reservations/{row['id']}/release")
    assert_inventory_invariants(pg.engine)


def test_http_race_through_waitress_gives_201s_and_409s_never_500(pg):
    receive(pg, "AMS", "SKU-1", 5)
    server = StopableWSGIServer.create(pg.wsgi, threads=16)
    token = pg.token("service")
    body = json.dumps({"warehouse": "AMS", "reference": "H", "lines": [{"sku": "SKU-1", "quantity": 1}]})
    barrier = threading.Barrier(30)

    def one(_):
        conn = http.client.HTTPConnection(server.adj.host, server.adj.port, timeout=30)
        conn.connect()
        barrier.wait()
        conn.request(
            "POST",
            "/v1/reservations",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        status = conn.getresponse().status
        conn.close()
        return status

    try:
        with ThreadPoolExecutor(30) as pool:
            statuses = Counter(pool.map(one, range(30)))
    finally:
        server.shutdown()
    assert statuses == Counter({201: 5, 409: 25})
    assert_inventory_invariants(pg.engine)

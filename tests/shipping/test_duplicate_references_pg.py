"""Concurrent creates of one reference on PostgreSQL: exactly one shipment, one 409.

SQLite serialises writers from BEGIN and so proves nothing here. The first test is
deterministic: a create that has made its check but not committed holds the
(warehouse, reference) lock, and a second create must wait for it and then name it;
without the lock the second one would not wait and would create a duplicate. The
second test races whole HTTP requests from threads, round after round.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from logistics_shared.identity import SYSTEM
from logistics_shared.outbox import Outbox
from shipping.domain import shipments
from shipping.domain.references import DuplicateReference
from shipping.models import outbox as outbox_table

from ..helpers.bus import wait_until
from ..helpers.shipping import SHIPMENT

pytestmark = pytest.mark.postgres

THREADS = 2
ROUNDS = 15

WAITING_AT_THE_LOCK = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@pytest.fixture
def pg(service_client):
    return service_client("shipping", "postgres", db_pool_size=THREADS + 3)


def _create(session: Any, data: dict[str, Any]) -> dict[str, Any]:
    return shipments.create(session, Outbox(session, outbox_table, producer="shipping"), SYSTEM, data)


def _live(client: Any, reference: str) -> int:
    with client.engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM shipments WHERE reference = :r AND status <> 'cancelled'"),
            {"r": reference},
        ).scalar_one()


def test_a_second_create_waits_for_the_first_and_then_names_it(pg):
    factory = pg.registry["dbsession_factory"]
    outcome: dict[str, Any] = {}

    def second() -> None:
        with factory() as session:
            try:
                outcome["created"] = _create(session, SHIPMENT)["id"]
                session.commit()
            except DuplicateReference as duplicate:
                session.rollback()
                outcome["named"] = duplicate.existing["id"]

    with factory() as first_session:
        first = _create(first_session, SHIPMENT)  # checked, locked; its rows go with the COMMIT
        thread = threading.Thread(target=second)
        thread.start()
        try:
            with pg.engine.connect() as conn:
                wait_until(
                    lambda: conn.execute(WAITING_AT_THE_LOCK).scalar_one() == 1,
                    timeout=10,
                    what="the second create to wait at the reference's lock",
                )
            assert outcome == {}, "the second create finished while the first held the reference"
        finally:
            first_session.commit()
            thread.join(timeout=30)
    assert outcome == {"named": first["id"]}
    assert _live(pg, "ORDER-1") == 1


def test_concurrent_http_creates_give_one_201_and_one_409(pg):
    barrier = threading.Barrier(THREADS)
    clients = [pg.as_() for _ in range(THREADS)]

    def post(args: tuple[int, str]) -> int:
        index, reference = args
        barrier.wait()
        body = {**SHIPMENT, "reference": reference}
        res = clients[index].post_json("/v1/shipments", body, expect_errors=True)
        if res.status_int == 409:
            assert res.json["type"] == "urn:logistics:problem:duplicate-shipment-reference"
        return int(res.status_int)

    with ThreadPoolExecutor(THREADS) as pool:
        for round_ in range(ROUNDS):
            reference = f"RACE-{round_}"
            outcome = Counter(pool.map(post, [(i, reference) for i in range(THREADS)]))
            assert outcome == Counter({201: 1, 409: THREADS - 1}), f"round {round_}: {outcome}"
            assert _live(pg, reference) == 1


def test_creates_of_different_references_do_not_wait_for_each_other(pg):
    factory = pg.registry["dbsession_factory"]
    with factory() as first_session:
        _create(first_session, SHIPMENT)  # holds ORDER-1 from AMS
        with factory() as other:
            _create(other, {**SHIPMENT, "reference": "ORDER-2"})
            _create(other, {**SHIPMENT, "warehouse": "RTM"})  # the same reference elsewhere
            other.commit()  # statement_timeout would fail it, had it waited
        first_session.commit()
    assert _live(pg, "ORDER-1") == 2 and _live(pg, "ORDER-2") == 1

"""The outbox buffers emitted events on the session and writes them in one multi-row INSERT
when the session flushes or commits (logistics_shared/outbox.py). Whatever the savepoints do,
what commits is exactly the events emitted in the parts of the transaction that committed, in
emit order, and nothing of a part that was rolled back: the class is "savepoints around emits
and writes", so the table walks every way a savepoint can end around an emit, a write of the
buffer, or both. A PostgreSQL trigger raises the relay's NOTIFY on every committed insert.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from logistics_shared.outbox import Outbox, notify_channel, pending_count

#: A script is a list of steps: "emit X", "flush", "begin" (a savepoint), "release", "rollback"
#: (the innermost savepoint), and the whole transaction ends by "commit" or "abort".
CASES: list[tuple[str, list[str], list[str]]] = [
    ("plain", ["emit A", "emit B", "commit"], ["A", "B"]),
    ("aborted", ["emit A", "emit B", "abort"], []),
    ("flushed then aborted", ["emit A", "flush", "emit B", "abort"], []),
    (
        "released savepoint keeps its events",
        ["emit A", "begin", "emit B", "release", "emit C", "commit"],
        ["A", "B", "C"],
    ),
    (
        "rolled-back savepoint drops its events",
        ["emit A", "begin", "emit B", "rollback", "emit C", "commit"],
        ["A", "C"],
    ),
    (
        "an event emitted before a savepoint, written inside it, survives its rollback",
        ["emit A", "begin", "flush", "rollback", "commit"],
        ["A"],
    ),
    (
        "written inside, emitted inside, rolled back",
        ["emit A", "begin", "emit B", "flush", "rollback", "emit C", "commit"],
        ["A", "C"],
    ),
    (
        "inner released into an outer that rolls back",
        ["emit A", "begin", "emit B", "begin", "emit C", "flush", "release", "rollback", "emit D", "commit"],
        ["A", "D"],
    ),
    (
        "written in an inner savepoint that is released, outer released",
        ["emit A", "begin", "begin", "flush", "release", "emit B", "release", "commit"],
        ["A", "B"],
    ),
    (
        "written in a released inner savepoint, outer rolled back: rows from before both come back",
        ["emit A", "begin", "emit B", "begin", "flush", "release", "rollback", "commit"],
        ["A"],
    ),
    (
        "inner rolled back, outer released",
        ["emit A", "begin", "emit B", "begin", "emit C", "flush", "rollback", "release", "commit"],
        ["A", "B"],
    ),
    (
        "emit order kept across writes",
        ["emit A", "flush", "begin", "emit B", "release", "emit C", "flush", "emit D", "commit"],
        ["A", "B", "C", "D"],
    ),
    ("nothing emitted", ["begin", "flush", "release", "commit"], []),
]


def stock_low(sku: str) -> dict[str, Any]:
    return {
        "sku": f"SKU-{sku}",
        "warehouse": "AMS",
        "on_hand": 1,
        "reserved": 0,
        "available": 1,
        "reorder_point": 3,
    }


def run_script(session: Session, outbox: Outbox, steps: list[str]) -> None:
    savepoints: list[Any] = []
    for step in steps:
        verb, _, arg = step.partition(" ")
        if verb == "emit":
            outbox.emit("stock.low", stock_low(arg))
        elif verb == "flush":
            outbox.flush()
        elif verb == "begin":
            savepoints.append(session.begin_nested())
        elif verb == "release":
            savepoints.pop().commit()
        elif verb == "rollback":
            savepoints.pop().rollback()
        elif verb == "commit":
            assert not savepoints, "a script ends with every savepoint closed"
            session.commit()
        elif verb == "abort":
            session.rollback()
        else:
            raise AssertionError(f"unknown step {step!r}")


def committed_skus(session: Session, table: Any) -> list[str]:
    payloads = session.execute(sql_select(table.c.payload).order_by(table.c.id)).scalars()
    return [orjson.loads(p)["data"]["sku"].removeprefix("SKU-") for p in payloads]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize(("name", "steps", "expected"), CASES, ids=[c[0] for c in CASES])
def test_what_commits_is_what_was_emitted_in_committed_parts(
    service_client: Callable[..., Any], backend: str, name: str, steps: list[str], expected: list[str]
) -> None:
    client = service_client("inventory", backend)
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session:
        before = committed_skus(session, table)
        session.rollback()
        run_script(session, Outbox(session, table, producer="inventory"), steps)
        assert pending_count(session) == 0, "nothing stays buffered once the transaction ended"
    with factory() as session:
        assert committed_skus(session, table)[len(before) :] == expected


@pytest.mark.postgres
def test_one_insert_statement_per_commit_whatever_the_number_of_events(service_client) -> None:
    client = service_client("inventory", "postgres")
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    inserts: list[str] = []

    def count(_conn, _cursor, statement, _params, _context, _many) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            inserts.append(statement)

    with factory() as session:
        engine = session.get_bind()
        target = getattr(engine, "real", engine)
        event.listen(target, "before_cursor_execute", count)
        try:
            outbox = Outbox(session, table, producer="inventory")
            for n in range(25):
                outbox.emit("stock.low", stock_low(str(n)))
            assert inserts == [], "emit only buffers"
            session.commit()
        finally:
            event.remove(target, "before_cursor_execute", count)
    assert len(inserts) == 1, inserts
    with factory() as session:
        assert committed_skus(session, table)[-25:] == [str(n) for n in range(25)]


@pytest.mark.fresh_app
@pytest.mark.postgres
def test_the_trigger_notifies_the_relay_at_commit_and_not_for_a_rollback(service_client) -> None:
    client = service_client("inventory", "postgres")
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    url = client.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f'LISTEN "{notify_channel("inventory")}"')
        received: list[str] = []

        def drain(seconds: float) -> None:
            received.extend(n.channel for n in listener.notifies(timeout=seconds, stop_after=10))

        with factory() as session:
            outbox = Outbox(session, table, producer="inventory")
            outbox.emit("stock.low", stock_low("R"))
            outbox.flush()
            session.rollback()
        drain(0.5)
        assert received == [], "a rolled-back insert wakes nobody"

        with factory() as session:
            outbox = Outbox(session, table, producer="inventory")
            for sku in "XYZ":
                outbox.emit("stock.low", stock_low(sku))
            session.commit()
        drain(5)
        assert received == [notify_channel("inventory")], "one notification per committing transaction"

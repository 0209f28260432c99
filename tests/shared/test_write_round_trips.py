"""How many network round trips a write request costs, BEGIN and COMMIT included.

The counter (tests/helpers/round_trips.py) is a TCP proxy between the app and
PostgreSQL that counts turns; the first tests prove it counts what the protocol
does. The table then pins the ceiling of each hot write: at most 3 round trips
without an ``Idempotency-Key``, at most 4 with one. The app runs on a fresh
database of its own reached through the proxy (``fresh_app``: the usual
in-transaction fixture would turn BEGIN and COMMIT into savepoints), and is warmed
up first, since the first executions of a statement differ (psycopg prepares a
statement on its fifth execution).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from shipping.domain import catalogue

from ..conftest import Client, make_settings
from ..helpers.round_trips import RoundTripCounter
from ..helpers.shipping import SHIPMENT
from ..inventory.conftest import ADDRESS, seed
from ..services import PG_URL, need_postgres

pytestmark = pytest.mark.postgres

WARM_UP = 7  # past psycopg's prepare threshold (5) for every statement
_unique = itertools.count()


@pytest.fixture
def counter() -> Iterator[RoundTripCounter]:
    need_postgres()
    proxy = RoundTripCounter.for_url(PG_URL)
    yield proxy
    proxy.close()


def _connect(counter: RoundTripCounter, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(counter.proxied(f"{PG_URL}/postgres"), **kwargs)


# The instrument itself -----------------------------------------------------------------


def test_a_statement_in_a_transaction_is_three_turns(counter):
    with _connect(counter) as conn, counter.counting() as found:
        conn.execute("SELECT 1").fetchone()  # BEGIN, then the statement
        conn.commit()
    assert found[0] == 3


def test_autocommit_statements_are_one_turn_each(counter):
    with _connect(counter, autocommit=True) as conn, counter.counting() as found:
        for _ in range(4):
            conn.execute("SELECT 1").fetchone()
    assert found[0] == 4


def test_a_pipeline_is_one_turn(counter):
    with _connect(counter, autocommit=True) as conn:
        with counter.counting() as found, conn.pipeline():
            cursors = [conn.execute("SELECT %s::int", [i]) for i in range(3)]
        assert [c.fetchone()[0] for c in cursors] == [0, 1, 2]
    assert found[0] == 1


def test_psycopg_syncs_its_own_begin_in_a_pipeline(counter):
    """psycopg answers its implicit BEGIN before the pipeline goes on: 2 turns, not 1."""
    with _connect(counter) as conn:
        with counter.counting() as found, conn.pipeline():
            cursor = conn.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        conn.rollback()
    assert found[0] == 2


def test_begin_a_statement_and_commit_in_one_pipeline_is_one_turn(counter):
    with _connect(counter, autocommit=True) as conn:
        with counter.counting() as found, conn.pipeline():
            conn.execute("BEGIN")
            conn.execute("SET LOCAL application_name = 'inside'")  # lasts as long as a transaction
            cursor = conn.execute("SELECT current_setting('application_name')")
            conn.execute("COMMIT")
        assert cursor.fetchone() == ("inside",)
        assert conn.execute("SELECT current_setting('application_name')").fetchone() != ("inside",)
    assert found[0] == 1


def test_connections_are_counted_together(counter):
    with (
        _connect(counter, autocommit=True) as one,
        _connect(counter, autocommit=True) as two,
        counter.counting() as found,  # entered after both connected
    ):
        one.execute("SELECT 1").fetchone()
        two.execute("SELECT 1").fetchone()
    assert found[0] == 2


# The writes -------------------------------------------------------------------------------

ADMIN_STOCK = 1_000_000


def _inventory(client: Any) -> None:
    seed(client)
    client.as_().post_json("/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": ADMIN_STOCK})


def _receipt() -> dict[str, Any]:
    return {"warehouse": "AMS", "sku": "SKU-1", "quantity": 3, "location": None, "reference": "PO-1"}


def _reservation() -> dict[str, Any]:
    return {
        "warehouse": "AMS",
        "reference": f"SO-{next(_unique)}",
        "lines": [{"sku": "SKU-1", "quantity": 1}],
    }


def _shipment() -> dict[str, Any]:
    return {**SHIPMENT, "reference": f"ORDER-{next(_unique)}"}


def _synced_catalogue(client: Any) -> None:
    """Shipping's catalogue read model knows the shipment's warehouse and SKUs and its
    consumer is drained, so a create checks them (and pays for it) on every request."""
    item = {"unit_weight_g": 400, "length_mm": 300, "width_mm": 200, "height_mm": 100, "version": 1}
    with client.registry["dbsession_factory"]() as session, session.begin():
        catalogue.apply_warehouse(
            session, {"code": "AMS", "name": "Amsterdam", "address": ADDRESS, "version": 1}
        )
        for line in SHIPMENT["lines"]:
            catalogue.apply_item(session, {"sku": line["sku"], "name": line["sku"], **item})
        # Fresh for the whole test (the mark is "drained" while at most N seconds old).
        session.execute(
            text("INSERT INTO drain_marks (handler, drained_at) VALUES (:h, :at)"),
            {"h": catalogue.HANDLER, "at": datetime.now(UTC) + timedelta(hours=1)},
        )


def _ticket() -> dict[str, Any]:
    return {
        "subject": "Where is my parcel?",
        "description": "Ordered last week, nothing arrived.",
        "type": "question",
        "priority": "normal",
        "queue": "customers",
        "tags": ["wismo", "nl"],
    }


@dataclass(frozen=True)
class Write:
    service: str
    path: str
    body: Callable[[], dict[str, Any]]
    setup: Callable[[Any], None] = lambda client: None


WRITES = {
    "receipt": Write("inventory", "/v1/receipts", _receipt, _inventory),
    "reservation": Write("inventory", "/v1/reservations", _reservation, _inventory),
    "shipment": Write("shipping", "/v1/shipments", _shipment),
    "shipment-catalogue-synced": Write("shipping", "/v1/shipments", _shipment, _synced_catalogue),
    "ticket": Write("support", "/v1/tickets", _ticket),
}

#: The ceilings of the performance issue, BEGIN and COMMIT included.
CEILING = {False: 3, True: 4}


@pytest.mark.fresh_app
@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "idempotency-key"])
@pytest.mark.parametrize("name", list(WRITES))
def test_write_round_trips(name, keyed, counter, database_factory, specs, tmp_path):
    write = WRITES[name]
    spec = specs[write.service]
    settings = make_settings(spec.name, counter.proxied(database_factory(spec, "postgres")), tmp_path)
    app = spec.configure(settings).make_wsgi_app()
    try:
        _measure(write, keyed, counter, Client(app, settings))
    finally:
        for key in ("dbengine", "dbengine_read"):
            app.registry[key].dispose()


def _measure(write: Write, keyed: bool, counter: RoundTripCounter, client: Client) -> None:
    write.setup(client)
    admin = client.as_()

    def post() -> Any:
        headers = {"Idempotency-Key": f"key-{next(_unique)}"} if keyed else {}
        return admin.post_json(write.path, write.body(), headers=headers, status=201)

    for _ in range(WARM_UP):
        post()
    with counter.counting() as found:
        post()
    assert found[0] <= CEILING[keyed], (
        f"POST {write.path} ({'with' if keyed else 'without'} a key): {found[0]}"
    )

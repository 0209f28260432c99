"""logistics_db_pool_*: the pools of the write and read engines report connections in use,
held and in overflow, and checkouts that waited or timed out on an exhausted pool; under
gunicorn's multiprocess mode the gauges add up over the live processes only."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import exc, text

from ..helpers.bus import wait_until
from ..helpers.metrics import sample, scrape_registry


@pytest.mark.postgres
def test_pool_gauges_move_as_connections_are_checked_out(service_client):
    client = service_client("inventory", "postgres", db_pool_size=2, db_max_overflow=1, db_connect_timeout=1)
    registry = client.registry["logistics.metrics"].registry
    engine = client.registry["dbengine"]

    def value(name: str, engine_name: str = "write") -> float | None:
        return sample(scrape_registry(registry), name, service="inventory", engine=engine_name)

    held = [engine.connect() for _ in range(2)]
    assert value("logistics_db_pool_checked_out") == 2
    assert value("logistics_db_pool_connections") == 2
    assert value("logistics_db_pool_overflow") == 0
    held.append(engine.connect())  # the one overflow connection
    assert value("logistics_db_pool_checked_out") == 3
    assert value("logistics_db_pool_overflow") == 1
    assert value("logistics_db_pool_wait_seconds_count") == 0, "nobody had to wait yet"

    # Exhausted: the next checkout waits until a connection comes back.
    got = threading.Event()

    def checkout() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            got.set()

    waiter = threading.Thread(target=checkout)
    waiter.start()
    time.sleep(0.3)  # let it block: the wait is what is measured
    assert not got.is_set(), "the fourth checkout waits for a connection"
    held.pop().close()
    waiter.join(10)
    assert got.is_set()
    assert value("logistics_db_pool_wait_seconds_count") == 1
    waited = value("logistics_db_pool_wait_seconds_sum")
    assert waited is not None and 0.2 < waited < 5, waited
    assert value("logistics_db_pool_checked_out") == 2
    assert value("logistics_db_pool_timeouts_total") == 0

    held.append(engine.connect())
    with pytest.raises(exc.TimeoutError):
        engine.connect()  # nobody returns one within the pool timeout (1 s)
    assert value("logistics_db_pool_timeouts_total") == 1
    assert value("logistics_db_pool_wait_seconds_count") == 2

    for conn in held:
        conn.close()
    assert value("logistics_db_pool_checked_out") == 0
    assert value("logistics_db_pool_overflow") == 0, "the overflow connection is closed on return"
    assert value("logistics_db_pool_connections") == 2

    # A GET runs on the read engine: its pool reports under engine="read".
    client.anonymous.get("/healthz")
    client.as_().get("/v1/items")
    assert value("logistics_db_pool_checked_out", "read") == 0
    connections = value("logistics_db_pool_connections", "read")
    assert connections is not None and connections >= 1


@pytest.mark.postgres
@pytest.mark.fresh_app  # the shared app holds a connection for the test's transaction
def test_a_request_holds_its_connection_only_while_it_runs(service_client):
    client = service_client("inventory", "postgres")
    registry = client.registry["logistics.metrics"].registry
    client.as_().post_json(
        "/v1/warehouses",
        {
            "code": "AMS",
            "name": "Amsterdam",
            "address": {"name": "DC", "line1": "Dock 1", "city": "Amsterdam", "country": "NL"},
        },
    )
    text_ = scrape_registry(registry)
    assert sample(text_, "logistics_db_pool_checked_out", service="inventory", engine="write") == 0
    held = sample(text_, "logistics_db_pool_connections", service="inventory", engine="write")
    assert held is not None and held >= 1


HOLDER = """
import os, sys, time
from logistics_shared.dbpool import metered_pool_class
from logistics_shared.metrics import ServiceMetrics
from sqlalchemy import create_engine

metrics = ServiceMetrics("inventory")
engine = create_engine(
    f"sqlite:///{sys.argv[1]}", poolclass=metered_pool_class(metrics.db_pool, "write")
)
held = [engine.connect() for _ in range(int(sys.argv[2]))]
print(os.getpid(), flush=True)
"""


def test_pool_gauges_add_up_over_live_processes_in_multiprocess_mode(tmp_path: Path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}

    def holder(count: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", HOLDER, str(tmp_path / "db.sqlite3"), str(count)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return int(out.stdout.split()[-1])

    def in_use() -> float | None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))
        return sample(
            scrape_registry(registry), "logistics_db_pool_checked_out", service="inventory", engine="write"
        )

    first, second = holder(2), holder(3)
    wait_until(lambda: in_use() == 5, what="the checked-out gauges of both processes summed (5)")
    mark_process_dead(first, str(directory))  # what gunicorn's child_exit does
    assert in_use() == 3, "a process that exited drops out of the sum (livesum)"
    mark_process_dead(second, str(directory))
    assert in_use() is None

"""The connection budget, live: over budget, the API answers 503 problems quickly and recovers.

A private PostgreSQL (tests/helpers/private_postgres.py: ``max_connections=12``, one of them
kept for superusers) holds inventory's database, owned by a role of its own (not a superuser,
as in production) and migrated by ``logistics migrate``. ``logistics serve inventory`` runs
gunicorn with 2 processes x 8 threads and pool 4 + overflow 4, so even deploy/checks.py's
count, processes x (pool + overflow) = 16, exceeds ``max_connections`` (each process has a
write and a read engine, so its real worst case is twice that). Each burst: 48 concurrent
clients, stock and item GETs, receipts with and without an ``Idempotency-Key``.

(a1) The server alone over its budget, the pools growing into a server that refuses: every
     answer is a 2xx or a 503 problem+json (status 503, ``Retry-After``), none a 500, none
     hung (every request has a client timeout, which counts as a failure).
(a2) The budget taken by others: every slot held by raw psycopg connections (the superuser's
     reserved one first, then the service's backends terminated and their slots taken), so
     each new connection gets ``too many clients already``: the same rule, with 503s (all of
     them, as nothing is cached), and the server's log names the driver's message.
(c)  ``GET /readyz`` during (a2): 503, ``"database": "unreachable"``, ``Retry-After``.
(b)  The held connections released: the same requests all succeed again within a bounded
     wait.
(d)  The service's backends terminated with nothing held (a restart or failover of
     PostgreSQL): the pools' dead connections give 2xx or 503 problems, never a 500, and then
     2xx only. At the end ``/readyz`` is 200 again within a bounded wait, and the ledger
     invariants hold, with exactly one unit on hand per receipt that answered 201 (a 503
     wrote nothing).

Latencies of the answers are printed (``-s``), never asserted (timings are benchmarks).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from logistics_shared.identity import Role
from logistics_shared.security import load_keyring, mint_token

from ..conftest import JWT_SECRET, make_settings
from ..helpers.private_postgres import PrivatePostgres, free_port, private_postgres
from ..invariants import assert_inventory_invariants

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.postgres]

SERVICE = "inventory"
LOGISTICS = str(Path(sys.executable).with_name("logistics"))
MAX_CONNECTIONS = 12
#: superuser_reserved_connections: the slot the test terminates the service's backends from.
RESERVED = 1
WORKERS, THREADS, POOL, OVERFLOW = 2, 8, 4, 4
#: A request taking longer than this is hung: a failure, whatever it answers later.
CLIENT_TIMEOUT = 15.0
#: Concurrent clients in a burst: three times the server's threads, so pools must grow.
CLIENTS = 3 * WORKERS * THREADS
BURST = 2 * CLIENTS
RECOVERY_WAIT = 60.0
REFUSED = "too many clients already"


# --- the processes -------------------------------------------------------------------------------
@contextmanager
def served(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    args = [LOGISTICS, "serve", SERVICE, "--port", str(port), "--workers", str(WORKERS)]
    args += ["--threads", str(THREADS)]
    with log.open("w") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def poll(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


# --- the client ----------------------------------------------------------------------------------
@dataclass
class Answer:
    method: str
    path: str
    status: int | None  # None: no answer within CLIENT_TIMEOUT, or the connection failed
    seconds: float
    headers: dict[str, str]
    body: bytes
    error: str = ""

    @property
    def problem(self) -> dict[str, Any] | None:
        if not self.headers.get("content-type", "").startswith("application/problem+json"):
            return None
        try:
            found = json.loads(self.body)
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    def is_503_problem(self) -> bool:
        problem = self.problem
        return (
            self.status == 503
            and problem is not None
            and problem.get("status") == 503
            and self.headers.get("retry-after", "").isdigit()
        )

    def ok(self) -> bool:
        return self.status in (200, 201) and self.seconds < CLIENT_TIMEOUT

    def __str__(self) -> str:
        what = self.status if self.status is not None else self.error
        return f"{self.method} {self.path} -> {what} in {self.seconds:.3f} s: {self.body[:300]!r}"


class Api:
    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers=headers,
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT) as response:
                status, got, data = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, got, data = exc.code, dict(exc.headers), exc.read()
        except OSError as exc:  # a timeout, a reset: no answer
            return Answer(method, path, None, time.perf_counter() - started, {}, b"", repr(exc))
        seconds = time.perf_counter() - started
        return Answer(method, path, status, seconds, {k.lower(): v for k, v in got.items()}, data)


RECEIPT = {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1}
#: (method, path, body, with an Idempotency-Key): reads of two kinds, receipts with a key (the
#: claim goes through the read engine first) and without (straight to the write engine).
MIX: tuple[tuple[str, str, Any, bool], ...] = (
    ("GET", "/v1/stock?warehouse=AMS&sku=SKU-1", None, False),
    ("POST", "/v1/receipts", RECEIPT, True),
    ("GET", "/v1/items/SKU-1", None, False),
    ("POST", "/v1/receipts", RECEIPT, False),
)


def requests_of_a_burst(n: int) -> list[tuple[str, str, Any, bool]]:
    return [MIX[i % len(MIX)] for i in range(n)]


def send(api: Api, request: tuple[str, str, Any, bool]) -> Answer:
    method, path, body, keyed = request
    return api.call(method, path, body, f"budget-{uuid.uuid4().hex}" if keyed else None)


def sequence(api: Api, n: int = 2 * len(MIX)) -> list[Answer]:
    return [send(api, request) for request in requests_of_a_burst(n)]


def burst(api: Api, n: int = BURST, clients: int = CLIENTS) -> list[Answer]:
    start = threading.Barrier(clients)

    def one(request: tuple[str, str, Any, bool], index: int) -> Answer:
        if index < clients:
            start.wait(CLIENT_TIMEOUT)  # the first wave leaves together
        return send(api, request)

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, requests_of_a_burst(n), range(n)))


def summary(label: str, answers: list[Answer]) -> str:
    lines = [f"{label}: {len(answers)} requests"]
    by_status: dict[str, list[float]] = {}
    for a in answers:
        by_status.setdefault(str(a.status or a.error[:40]), []).append(a.seconds)
    for status, seconds in sorted(by_status.items()):
        seconds.sort()
        p95 = seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))]
        lines.append(
            f"  {status}: n={len(seconds)} median {statistics.median(seconds) * 1000:.0f} ms,"
            f" p95 {p95 * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms"
        )
    return "\n".join(lines)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


# --- the connections held by "other replicas" ----------------------------------------------------
#: The service's backends (application_name logistics-<svc>), terminated: the count of them.
#: pg_terminate_backend(pid, timeout) waits (up to 5 s) until each backend is gone.
TERMINATE = (
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'logistics-%'"
    " AND pg_terminate_backend(pid, 5000)"
)


def terminate(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(TERMINATE).fetchone()
    return int(row[0]) if row is not None else 0


def take_every_slot(pg: PrivatePostgres) -> list[psycopg.Connection[Any]]:
    """Hold every connection slot, as the superuser (its reserved slot is free even when the
    service holds all the others), terminating the service's backends (its pools keep them,
    dead) until no backend of the service is left and a new connection is refused with
    ``too many clients already``."""
    held: list[psycopg.Connection[Any]] = []
    for _round in range(5):
        refused = False
        try:
            while len(held) <= MAX_CONNECTIONS:
                held.append(psycopg.connect(pg.conninfo(), autocommit=True, connect_timeout=5))
        except psycopg.OperationalError as exc:
            if REFUSED not in str(exc):
                raise
            refused = True
        assert held, "not one connection to the private PostgreSQL"
        if refused and terminate(held[0]) == 0:
            return held  # nothing of the service's left, and the next connect was refused
    raise AssertionError(f"could not take every slot: {len(held)} held\n{pg.log_tail()}")


def terminate_service_backends(pg: PrivatePostgres) -> int:
    """What a PostgreSQL restart or failover does to the service's pools: every backend gone,
    the pools still holding the connections."""
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        return terminate(conn)


# --- the test ------------------------------------------------------------------------------------
def test_over_the_connection_budget_the_api_answers_503_problems_and_recovers(tmp_path: Path) -> None:
    with ExitStack() as stack:
        pg = stack.enter_context(private_postgres(MAX_CONNECTIONS, superuser_reserved=RESERVED))
        database_url = pg.create_database("lt_budget_inventory", owner=SERVICE)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGISTICS_", "PROMETHEUS_"))}
        env.update(
            {
                f"LOGISTICS_{SERVICE.upper()}_DATABASE_URL": database_url,
                "LOGISTICS_JWT_SECRET": JWT_SECRET,
                "LOGISTICS_LOG_LEVEL": "WARNING",
                "LOGISTICS_ACCESS_LOG": "false",
                "LOGISTICS_VAR_DIR": str(tmp_path / "var"),
                "LOGISTICS_DB_POOL_SIZE": str(POOL),
                "LOGISTICS_DB_MAX_OVERFLOW": str(OVERFLOW),
            }
        )
        migrated = subprocess.run(
            [LOGISTICS, "migrate", SERVICE], env=env, capture_output=True, text=True, timeout=120
        )
        assert migrated.returncode == 0, f"migrate: {migrated.stdout}\n{migrated.stderr}"
        port, log = free_port(), tmp_path / "web.log"
        server = stack.enter_context(served(env, port, log))

        def logs() -> str:
            return log.read_text(errors="replace")

        try:
            run_the_proof(pg, port, database_url, tmp_path, server)
        except AssertionError as exc:
            tail = "\n".join(logs().splitlines()[-40:])
            raise AssertionError(f"{exc}\n--- web ---\n{tail}\n--- postgres ---\n{pg.log_tail()}") from None
        assert REFUSED in logs(), f"the web log does not name the driver's message {REFUSED!r}"
        # No 500 hidden behind a retry: neither the exception view's nor gunicorn's own.
        for sign in ('"msg":"unhandled error"', "Error handling request"):
            found = [line for line in logs().splitlines() if sign in line]
            assert not found, f"{sign!r} in the web log:\n" + "\n".join(found[:3])


def run_the_proof(
    pg: PrivatePostgres, port: int, database_url: str, tmp_path: Path, server: subprocess.Popen[bytes]
) -> None:
    settings = make_settings(SERVICE, database_url, tmp_path)
    api = Api(port, mint_token(load_keyring(settings), role=Role.ADMIN, subject="connection-budget"))

    def readyz() -> Answer:
        return api.call("GET", "/readyz")

    poll(lambda: server.poll() is not None or readyz().status == 200, f"{SERVICE} ready on :{port}", 60)
    assert server.poll() is None, f"logistics serve exited ({server.returncode})"
    address = {"name": "Main warehouse", "line1": "Dock 1", "city": "Rotterdam", "country": "NL"}
    item = {"sku": "SKU-1", "name": "Item", "unit_weight_g": 250, "length_mm": 100, "width_mm": 50}
    for path, body in (
        ("/v1/warehouses", {"code": "AMS", "name": "Warehouse AMS", "address": address}),
        ("/v1/items", {**item, "height_mm": 20, "reorder_point": 3}),
        ("/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 10}),
    ):
        answer = api.call("POST", path, body)
        assert answer.status == 201, str(answer)
    received = 10
    print(f"\nload average before: {loadavg()}")

    # (a1) the server alone over its budget ---------------------------------------------------------
    over: list[Answer] = []
    for _round in range(3):
        over += burst(api)
    print(summary("(a1) server over budget, no one else", over))
    bad = [a for a in over if not (a.ok() or a.is_503_problem())]
    assert not bad, "neither a 2xx nor a 503 problem:\n" + "\n".join(map(str, bad[:10]))
    received += sum(1 for a in over if a.method == "POST" and a.status == 201)

    # (a2) every slot held by others --------------------------------------------------------------
    held = take_every_slot(pg)
    try:
        refused_before = pg.log_text().count(REFUSED)
        exhausted = burst(api)
        ready = [readyz() for _ in range(3)]
        print(summary(f"(a2) every slot held ({len(held)} connections)", exhausted))
        print(summary("(c) /readyz while exhausted", ready))
        print(f"load average during: {loadavg()}")
        # A 2xx is allowed (an answer from a cache would be one); a 500 or a hang is not.
        bad = [a for a in exhausted if not (a.ok() or a.is_503_problem()) or a.seconds >= CLIENT_TIMEOUT]
        assert not bad, "neither a 2xx nor a 503 problem, in time:\n" + "\n".join(map(str, bad[:10]))
        assert any(a.is_503_problem() for a in exhausted), "no 503 with every slot held"
        assert pg.log_text().count(REFUSED) > refused_before, "the server refused no connection"
        for a in ready:
            said = json.loads(a.body) if a.status is not None else None
            assert a.status == 503 and a.headers.get("retry-after", "").isdigit(), str(a)
            assert said is not None and said["status"] == "unavailable", str(a)
            assert said["database"] == "unreachable", str(a)
    finally:
        for conn in held:
            conn.close()

    # (b) recovery -----------------------------------------------------------------------------------
    released = time.monotonic()
    recovered: list[Answer] = []

    def all_ok() -> bool:
        answers = sequence(api)
        recovered.extend(answers)
        return all(a.ok() for a in answers)

    poll(all_ok, "every request answering 2xx after the connections were released", RECOVERY_WAIT)
    print(f"(b) recovered {time.monotonic() - released:.2f} s after the release")
    print(summary("(b) requests until and after recovery", recovered))
    bad = [a for a in recovered if not (a.ok() or a.is_503_problem())]
    assert not bad, "neither a 2xx nor a 503 problem:\n" + "\n".join(map(str, bad[:10]))
    received += sum(1 for a in recovered if a.method == "POST" and a.status == 201)

    # (d) every backend of the service terminated, nothing held: dead pooled connections -------
    killed = terminate_service_backends(pg)
    dead: list[Answer] = []

    def all_ok_again() -> bool:
        answers = sequence(api)
        dead.extend(answers)
        return all(a.ok() for a in answers)

    poll(all_ok_again, "every request answering 2xx after the backends were terminated", RECOVERY_WAIT)
    print(summary(f"(d) {killed} backends of the service terminated", dead))
    bad = [a for a in dead if not (a.ok() or a.is_503_problem())]
    assert not bad, "neither a 2xx nor a 503 problem:\n" + "\n".join(map(str, bad[:10]))
    received += sum(1 for a in dead if a.method == "POST" and a.status == 201)

    # /readyz reads through a raw DBAPI connection of the write pool, so a dead pooled
    # connection (its backend terminated above) fails one probe and is then discarded,
    # without SQLAlchemy invalidating the rest of the pool: a few probes may say 503 first.
    probes: list[Answer] = []

    def ready_again() -> bool:
        probes.append(readyz())
        return probes[-1].status == 200

    poll(ready_again, "/readyz answering 200 after the connections were released", RECOVERY_WAIT)
    print(summary("/readyz until ready, after (d)", probes))
    bad = [a for a in probes if a.status not in (200, 503) or a.seconds >= CLIENT_TIMEOUT]
    assert not bad, "/readyz neither 200 nor 503, in time:\n" + "\n".join(map(str, bad))
    print(f"load average after: {loadavg()}")

    # As the superuser, whose reserved slot is free while the service's pools hold the rest.
    superuser_url = pg.conninfo(database_url.rsplit("/", 1)[1])
    engine = create_engine(superuser_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert_inventory_invariants(engine)
        with engine.connect() as check:
            on_hand = check.execute(text("SELECT sum(on_hand) FROM stock_levels")).scalar_one()
        assert on_hand == received, f"on hand {on_hand}, but receipts answered 201 for {received}"
    finally:
        engine.dispose()

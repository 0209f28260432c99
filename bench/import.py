"""Bulk import on PostgreSQL: rows/s of the set-based path against row by row and against raw
COPY, and a shipment's time to ready while an import runs against the same stock levels.

    .venv/bin/python bench/import.py [--rows 20000] [--baseline-rows 1000] [--rounds 3]
                                     [--chunk-size 1000] [--rate 10] [--seconds 20]
                                     [--saga-rounds 2] [--poll-ms 10] [--skip-throughput]
                                     [--skip-saga] [--pg-url ...] [--broker-url ...]

Part 1, throughput (in this process, one fresh database per measurement, cloned from a
migrated template ``lt_imp_template``). Each round runs, in alternating order:

  row by row   ``importer.run_import(set_based=False)``, the path SQLite takes (and every
               database took before): one transaction per row through the API's domain
               functions; ``--baseline-rows`` rows, since 20,000 take minutes;
  set-based    ``importer.run_import(set_based=True)``: chunks of ``--chunk-size`` rows, COPY
               into a staging table, one merge per step; ``--rows`` rows;
  limit        the rows those imports write (items; movements, outbox rows and the levels'
               update), COPYed straight into the tables by psycopg: no CSV, no validation, no
               events built, no locks: the floor;
  CLI          ``logistics inventory import items|stock FILE --no-progress``, wall clock, start-up
               included: what a person at the terminal waits for.

and three phases each: items (all new), stock (a first count: every level new) and a recount
(every level exists and changes). Medians and ranges over the rounds are the result, with
the ratios set-based / row by row and set-based / limit.

Part 2, the saga meanwhile (real processes, as bench/saga.py runs them): ``logistics serve``
and ``logistics worker`` for inventory and shipping on fresh databases
(``lt_imp_saga_inventory``, ``lt_imp_saga_shipping``) and a fresh bus namespace on the
machine's RabbitMQ; the kit's warehouse, 50 SKUs and stock, plus ``--rows`` items and their
levels loaded with the CLI. Shipments (1 unit of two of the 50 SKUs) are POSTed at ``--rate``
per second for ``--seconds``, in two conditions, alternating over ``--saga-rounds`` rounds:

  idle     nothing else runs;
  during   ``logistics inventory import stock`` runs over and over (two count files in turn,
           so every run changes every level: ``--rows`` movements and events a run), each file
           with the 50 SKUs the shipments reserve spread through it, so every chunk locks
           some of the levels the saga's reservations update.

Time to ready runs from just before the POST to the first poll of shipping's database
(every ``--poll-ms``) that saw the shipment ``ready`` (observed: an upper bound), and to the
``at`` of its ``ready`` history entry (stamped: a lower bound). It spans shipping's relay,
the inventory consumer's reservation (which waits for a chunk's row locks), inventory's relay
(which also carries the import's events) and shipping's consumer.

Nothing asserts. Every subprocess is stopped, every database dropped and the namespace's queues
and exchanges deleted at the end, also on errors, Ctrl-C or SIGTERM (exit status 130).
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import random
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from kit import core, results
from kit.broker import broker_version, safely_delete_namespace
from kit.core import ADDRESS, BROKER_URL, PG_URL, SKUS, WAREHOUSE, stoppable_main
from kit.cpu import CpuMeter
from kit.databases import database, make_settings, migrated_databases, postgres_facts
from kit.facts import libraries, load_average, machine, software
from kit.facts import lines as fact_lines
from kit.shipments import Driver, Poller, Sent, wait_seen
from kit.stats import percentile

TEMPLATE = "lt_imp_template"
SAGA_DATABASES = {"inventory": "lt_imp_saga_inventory", "shipping": "lt_imp_saga_shipping"}
PHASES = ("items (new)", "stock (first count)", "stock (recount)")
ITEM_HEADER = ["sku", "name", "unit_weight_g", "length_mm", "width_mm", "height_mm", "reorder_point"]
STOCK_HEADER = ["warehouse", "sku", "counted", "reason", "note"]
#: What the shipments' SKUs are counted at during the saga part: far above what they reserve.
SAGA_COUNT = 100_000
#: An outbox payload the size of a real ``stock.adjusted`` one, for the limit's COPY.
LIMIT_ENVELOPE = {
    "id": str(uuid.UUID(int=1)),
    "type": "stock.adjusted",
    "version": 1,
    "occurred_at": "2024-01-01T00:00:00+00:00",
    "producer": "inventory",
    "correlation_id": str(uuid.UUID(int=1)),
    "causation_id": None,
    "data": {
        "sku": "IMP-000001",
        "warehouse": WAREHOUSE,
        "on_hand": 120,
        "reserved": 0,
        "available": 120,
        "delta": 120,
        "reason": "count",
        "note": None,
        "movement_id": 1,
        "location": None,
        "reference": None,
    },
}


# -- the files -------------------------------------------------------------------------------------


def item_skus(n: int) -> list[str]:
    return [f"IMP-{i:06d}" for i in range(n)]


def write_items(path: Path, skus: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(",".join(ITEM_HEADER) + "\n")
        for i, sku in enumerate(skus):
            dims = f"{100 + i % 900},{10 + i % 90},{20 + i % 80},{30 + i % 70}"
            handle.write(f"{sku},Imported item {i},{dims},{i % 10}\n")
    return path


def write_counts(path: Path, rows: list[tuple[str, int]], warehouse: str = WAREHOUSE) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(",".join(STOCK_HEADER) + "\n")
        for sku, counted in rows:
            handle.write(f"{warehouse},{sku},{counted},count,\n")
    return path


def counts(skus: list[str], seed: int) -> list[tuple[str, int]]:
    """A count per SKU; another seed changes (almost) every one."""
    rng = random.Random(seed)
    return [(sku, rng.randint(1, 500) * 2 + seed % 2) for sku in skus]


# -- databases -------------------------------------------------------------------------------------


def admin(pg_url: str, sql: str) -> None:
    with psycopg.connect(f"{pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def clone(pg_url: str, name: str) -> Iterator[str]:
    """A database cloned from the migrated template, dropped afterwards whatever happens."""
    admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(pg_url, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    try:
        yield f"{pg_url.rstrip('/')}/{name}"
    finally:
        admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_warehouse(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO warehouses (code, name, address, created_at) VALUES (%s, %s, %s, now())",
            (WAREHOUSE, "Bench warehouse", orjson.dumps(ADDRESS).decode()),
        )


# -- part 1: throughput ----------------------------------------------------------------------------


@dataclass
class Timing:
    path: str
    phase: str
    rows: int
    seconds: float
    cpu: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def import_in_process(url: str, var_dir: str, files: list[Path], set_based: bool, chunk: int) -> list[Timing]:
    from inventory import importer
    from logistics_shared.db import make_engine, session_factory
    from logistics_shared.identity import Identity, Role

    engine = make_engine(make_settings("inventory", url, BROKER_URL, "unused", var_dir))
    factory = session_factory(engine)
    actor = Identity(subject="bench", role=Role.ADMIN)
    path = "set-based" if set_based else "row by row"
    timings = []
    try:
        for phase, file in zip(PHASES, files, strict=True):
            source = importer.open_source(
                file, importer.KINDS["items" if phase.startswith("items") else "stock"]
            )
            cpu = CpuMeter({"bench (the import)": os.getpid()})
            start = time.perf_counter()
            result = importer.run_import(source, factory, actor, chunk_size=chunk, set_based=set_based)
            seconds = time.perf_counter() - start
            if result.failed or result.stopped or result.rows_read != source.total_rows:
                raise SystemExit(f"{path} {phase}: {result.failed} failed, stopped: {result.stopped}")
            timings.append(Timing(path, phase, result.rows_read, seconds, cpu.read()))
    finally:
        engine.dispose()
    return timings


def import_limit(
    url: str, items: list[list[Any]], first: list[tuple[str, int]], recount: list[tuple[str, int]]
) -> list[Timing]:
    """The same writes with nothing around them: psycopg COPY straight into the tables."""
    timings = []
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY items (sku, name, unit_weight_g, length_mm, width_mm, height_mm, reorder_point, "
                "version, created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            for row in items:
                copy.write_row([*row, 1, now, now])
        conn.commit()
        timings.append(Timing("limit", PHASES[0], len(items), time.perf_counter() - start))
        ids = dict(conn.execute("SELECT sku, id FROM items").fetchall())
        (warehouse_id,) = conn.execute(
            "SELECT id FROM warehouses WHERE code = %s", (WAREHOUSE,)
        ).fetchone() or (0,)
        payload = orjson.dumps(LIMIT_ENVELOPE).decode()
        for phase, rows, fresh in ((PHASES[1], first, True), (PHASES[2], recount, False)):
            start = time.perf_counter()
            if fresh:
                with (
                    conn.cursor() as cursor,
                    cursor.copy(
                        "COPY stock_levels (item_id, warehouse_id, on_hand, reserved) FROM STDIN"
                    ) as copy,
                ):
                    for sku, _counted in rows:
                        copy.write_row((ids[sku], warehouse_id, 0, 0))
            conn.execute(
                "UPDATE stock_levels l SET on_hand = u.on_hand"
                " FROM unnest(%s::int[], %s::int[]) u(item_id, on_hand)"
                " WHERE l.item_id = u.item_id AND l.warehouse_id = %s",
                ([ids[sku] for sku, _ in rows], [c for _, c in rows], warehouse_id),
            )
            with (
                conn.cursor() as cursor,
                cursor.copy(
                    "COPY movements (item_id, warehouse_id, kind, quantity, reason, actor, created_at)"
                    " FROM STDIN"
                ) as copy,
            ):
                for sku, counted in rows:
                    copy.write_row(
                        (ids[sku], warehouse_id, "adjustment", counted, "count", "admin:bench", now)
                    )
            with (
                conn.cursor() as cursor,
                cursor.copy(
                    "COPY outbox (event_id, event_type, event_version, payload, created_at) FROM STDIN"
                ) as copy,
            ):
                for _ in rows:
                    copy.write_row((str(uuid.uuid4()), "stock.adjusted", 1, payload, now))
            conn.commit()
            timings.append(Timing("limit", phase, len(rows), time.perf_counter() - start))
    return timings


def import_cli(env: dict[str, str], files: list[Path], chunk: int) -> list[Timing]:
    timings = []
    for phase, file in zip(PHASES, files, strict=True):
        kind = "items" if phase.startswith("items") else "stock"
        argv = [
            core.logistics_cli(),
            "inventory",
            "import",
            kind,
            str(file),
            "--no-progress",
            f"--chunk-size={chunk}",
        ]
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"`{' '.join(argv[1:])}` exited {done.returncode}:\n{done.stdout}{done.stderr}")
        rows = sum(1 for _ in file.open(encoding="utf-8")) - 1
        timings.append(Timing("CLI", phase, rows, seconds))
    return timings


def throughput(args: argparse.Namespace, tmp: Path, stop: threading.Event) -> list[Timing]:
    skus = item_skus(args.rows)
    base = skus[: args.baseline_rows]
    files = {
        "set-based": [
            write_items(tmp / "items.csv", skus),
            write_counts(tmp / "first.csv", counts(skus, 1)),
            write_counts(tmp / "recount.csv", counts(skus, 2)),
        ],
        "row by row": [
            write_items(tmp / "items-base.csv", base),
            write_counts(tmp / "first-base.csv", counts(base, 1)),
            write_counts(tmp / "recount-base.csv", counts(base, 2)),
        ],
    }
    item_rows = [
        [sku, f"Imported item {i}", 100 + i % 900, 10 + i % 90, 20 + i % 80, 30 + i % 70, i % 10]
        for i, sku in enumerate(skus)
    ]
    timings: list[Timing] = []
    with database("postgres", TEMPLATE, args.pg_url) as template_url:
        from logistics_shared.migrations import upgrade
        from logistics_shared.service import discover

        upgrade(
            discover()["inventory"], make_settings("inventory", template_url, BROKER_URL, "unused", str(tmp))
        )
        add_warehouse(template_url)
        for r in range(args.rounds):
            paths = ["row by row", "set-based", "limit", "CLI"]
            for path in paths if r % 2 == 0 else paths[::-1]:
                if stop.is_set():
                    raise KeyboardInterrupt
                print(f"round {r + 1}/{args.rounds}: {path} ...", file=sys.stderr)
                with clone(args.pg_url, f"lt_imp_round_{r}") as url:
                    if path == "limit":
                        timings += import_limit(url, item_rows, counts(skus, 1), counts(skus, 2))
                    elif path == "CLI":
                        env = core.service_env(url, str(tmp), 4)
                        timings += import_cli(env, files["set-based"], args.chunk_size)
                    else:
                        timings += import_in_process(
                            url, str(tmp), files[path], path == "set-based", args.chunk_size
                        )
    return timings


def render_throughput(timings: list[Timing], args: argparse.Namespace) -> list[str]:
    def rates(path: str, phase: str) -> list[float]:
        return [t.rate for t in timings if t.path == path and t.phase == phase]

    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    lines = [
        "",
        f"Part 1: rows/s, median (range) of {args.rounds} rounds; row by row on {args.baseline_rows:,} rows, "
        f"the others on {args.rows:,}; chunks of {args.chunk_size}",
    ]
    header = (
        f"{'phase':<20} {'row by row':>20} {'set-based':>22} {'limit (raw COPY)':>22} {'CLI wall clock':>22}"
        f" {'set/row':>8} {'set/limit':>10}"
    )
    lines += [header, "-" * len(header)]
    for phase in PHASES:
        row, bulk, limit, cli = (rates(p, phase) for p in ("row by row", "set-based", "limit", "CLI"))
        ratio = statistics.median(bulk) / statistics.median(row) if row and bulk else float("nan")
        floor = statistics.median(bulk) / statistics.median(limit) if limit and bulk else float("nan")
        lines.append(
            f"{phase:<20} {cell(row):>20} {cell(bulk):>22} {cell(limit):>22} {cell(cli):>22}"
            f" {ratio:>7.1f}x {floor:>9.2f}"
        )
        for path, values in (("row by row", row), ("set-based", bulk), ("limit (raw COPY)", limit)):
            if values:
                results.emit(
                    "import",
                    f"{phase}, {path}",
                    statistics.median(values),
                    "rows/s",
                    low=min(values),
                    high=max(values),
                    goal=2000.0 if path == "set-based" else None,
                )
    cli = [t for t in timings if t.path == "CLI"]
    if cli:
        lines.append("")
        for phase in PHASES:
            seconds = [t.seconds for t in cli if t.phase == phase]
            results.emit(
                "import",
                f"CLI {phase}",
                statistics.median(seconds),
                "s",
                goal=10.0 if args.rows >= 20_000 else None,
            )
            lines.append(
                f"  CLI, {args.rows:,} rows, {phase}: {statistics.median(seconds):.2f} s median "
                f"({min(seconds):.2f}-{max(seconds):.2f}), start-up included"
            )
    lines += ["", "Where the CPU went (last round; % of one core):"]
    for path in ("row by row", "set-based"):
        for t in [t for t in timings if t.path == path][-len(PHASES) :]:
            lines.append(f"  {path:<10} {t.phase:<20} {t.cpu.removeprefix('cpu (% of one core): ')}")
    return lines


# -- part 2: the saga while an import runs ---------------------------------------------------------


class ReadyWatcher(Poller):
    """Polls shipping's database for pending shipments that are ``ready`` (no HTTP, so the
    shipping web process serves only the POSTs)."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__("ready-watcher")
        self.url, self.interval = url, interval
        self.ready: dict[str, float] = {}
        self.cycles: list[float] = []

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            previous: float | None = None
            while not self.stop.is_set():
                with self.lock:
                    references = list(self.pending)
                if not references:
                    previous = None
                    self.wake.wait(0.05)
                    self.wake.clear()
                    continue
                started = time.monotonic()
                rows = conn.execute(
                    "SELECT reference FROM shipments WHERE status = 'ready' AND reference = ANY(%s)",
                    (references,),
                ).fetchall()
                now = time.monotonic()
                with self.lock:
                    for (reference,) in rows:
                        if self.pending.pop(reference, None) is not None:
                            self.ready[reference] = now
                    if previous is not None:
                        self.cycles.append(started - previous)
                previous = started
                self.stop.wait(max(0.0, started + self.interval - time.monotonic()))


def stamped(url: str, sent: list[Sent]) -> dict[str, float]:
    """Reference -> ms from just before the POST to the ``at`` of its ``ready`` history entry."""
    walls = {item.reference: item.wall for item in sent if item.wall is not None}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT s.reference, h.at FROM shipment_history h JOIN shipments s ON s.id = h.shipment_id "
            "WHERE h.to_status = 'ready' AND s.reference = ANY(%s)",
            (list(walls),),
        ).fetchall()
    return {ref: (at - walls[ref]).total_seconds() * 1000 for ref, at in rows if walls.get(ref)}


STAGES = (
    ("shipping relay", "requested", "requested_out"),
    ("to the reserving handler", "requested_out", "reserving"),
    ("reserve (incl. lock waits)", "reserving", "reserved"),
    ("inventory relay", "reserved", "reserved_out"),
    ("to ready", "reserved_out", "ready"),
)


def stages(urls: dict[str, str], sent: list[Sent]) -> dict[str, list[float]]:
    """Where each shipment's time to ready went, ms, from the rows the saga left behind.

    Per shipment id: shipping's ``shipment.requested`` outbox row (created, published),
    inventory's reservation (``created_at``: when ``reserve`` began, before any lock wait),
    inventory's ``stock.reserved`` outbox row (created: after the levels were updated;
    published: confirmed by the broker) and shipping's ``ready`` history entry. Every stamp
    is this machine's wall clock, taken by four processes.
    """
    ids = [item.id for item in sent if item.id]
    at: dict[str, dict[str, datetime]] = {i: {} for i in ids}
    with psycopg.connect(urls["shipping"]) as conn:
        for sid, created, published in conn.execute(
            "SELECT payload::jsonb #>> '{data,shipment_id}', created_at, published_at FROM outbox"
            " WHERE event_type = 'shipment.requested' AND payload::jsonb #>> '{data,shipment_id}' = ANY(%s)",
            (ids,),
        ):
            at[sid].update(requested=created, requested_out=published)
        for sid, ready in conn.execute(
            "SELECT shipment_id, at FROM shipment_history"
            " WHERE to_status = 'ready' AND shipment_id = ANY(%s)",
            (ids,),
        ):
            at[sid]["ready"] = ready
    with psycopg.connect(urls["inventory"]) as conn:
        for sid, created in conn.execute(
            "SELECT reference, created_at FROM reservations WHERE reference = ANY(%s)", (ids,)
        ):
            at[sid]["reserving"] = created
        for sid, created, published in conn.execute(
            "SELECT payload::jsonb #>> '{data,reference}', created_at, published_at FROM outbox"
            " WHERE event_type = 'stock.reserved' AND payload::jsonb #>> '{data,reference}' = ANY(%s)",
            (ids,),
        ):
            at[sid].update(reserved=created, reserved_out=published)
    found: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    for stamps in at.values():
        for name, start, end in STAGES:
            if stamps.get(start) and stamps.get(end):
                found[name].append((stamps[end] - stamps[start]).total_seconds() * 1000)
    return found


class ImportLoop(threading.Thread):
    """``logistics inventory import stock`` over and over, two files in turn, until stopped."""

    def __init__(self, env: dict[str, str], files: list[Path], chunk: int) -> None:
        super().__init__(name="import-loop", daemon=True)
        self.env, self.files, self.chunk = env, files, chunk
        self.halt = threading.Event()
        self.runs: list[tuple[float, int, str]] = []  # (seconds, exit status, summary)
        self.process: subprocess.Popen[str] | None = None

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            file = self.files[n % len(self.files)]
            n += 1
            argv = [
                core.logistics_cli(),
                "inventory",
                "import",
                "stock",
                str(file),
                "--no-progress",
                f"--chunk-size={self.chunk}",
            ]
            start = time.perf_counter()
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            out, _ = self.process.communicate()
            self.runs.append(
                (
                    time.perf_counter() - start,
                    self.process.returncode,
                    out.strip().splitlines()[0] if out.strip() else "",
                )
            )

    def finish(self) -> None:
        """Let the run in progress finish (a half-done run would measure less), then stop."""
        self.halt.set()
        self.join()

    def kill(self) -> None:
        """On the way out after an error or Ctrl-C: stop the run in progress too."""
        self.halt.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(10)
        if self.is_alive():
            self.join(10)


@dataclass
class Condition:
    name: str
    round: int
    sent: list[Sent]
    ready: dict[str, float]
    stamped_ms: dict[str, float]
    cpu: str
    stages: dict[str, list[float]]
    runs: list[tuple[float, int, str]] = field(default_factory=list)

    @property
    def observed_ms(self) -> list[float]:
        return [
            (self.ready[i.reference] - i.start) * 1000
            for i in self.sent
            if i.status == 201 and i.reference in self.ready
        ]

    @property
    def never(self) -> int:
        return sum(i.status == 201 and i.reference not in self.ready for i in self.sent)

    @property
    def failed(self) -> int:
        return sum(i.start > 0 and i.status != 201 for i in self.sent)


def saga(args: argparse.Namespace, tmp: Path, stop: threading.Event) -> tuple[list[Condition], float]:
    namespace = f"benchimp{uuid.uuid4().hex[:8]}"
    conditions: list[Condition] = []
    with ExitStack() as stack:
        stack.callback(safely_delete_namespace, args.broker_url, namespace)
        print("creating and migrating lt_imp_saga_inventory and lt_imp_saga_shipping ...", file=sys.stderr)
        urls = stack.enter_context(migrated_databases(args.pg_url, SAGA_DATABASES, args.broker_url, str(tmp)))
        env = core.deployment_env(urls, str(tmp), 8, args.broker_url, namespace)
        token = core.admin_token(env)
        webs = {s: core.web_server(f"{s} web", s, env, threads=8) for s in ("inventory", "shipping")}
        servers = [
            *webs.values(),
            *(core.worker_server(f"{s} worker", s, env) for s in ("inventory", "shipping")),
        ]
        print(f"starting 2 web processes and 2 workers (bus namespace {namespace}) ...", file=sys.stderr)
        for server in servers:
            stack.enter_context(server)
        pids = {server.name: server.process.pid for server in servers if server.process is not None}
        core.seed(core.http_seeder(webs["inventory"].base_url, token))

        # The import's items, and files that count them and the shipments' 50 SKUs, spread out.
        skus = item_skus(args.rows - len(SKUS))
        print(f"loading {len(skus):,} items and their first count with the CLI ...", file=sys.stderr)
        step = max(1, len(skus) // len(SKUS))
        files = []
        for seed in (1, 2):
            rows = counts(skus, seed)
            for k, sku in enumerate(SKUS):
                rows.insert(min(len(rows), k * (step + 1)), (sku, SAGA_COUNT + seed))
            files.append(write_counts(tmp / f"saga-count-{seed}.csv", rows))
        for argv in (["items", str(write_items(tmp / "saga-items.csv", skus))], ["stock", str(files[1])]):
            core.run_cli(["inventory", "import", *argv, "--no-progress"], env)

        watcher = stack.enter_context(ReadyWatcher(urls["shipping"], args.poll_ms / 1000))
        driver = Driver(webs["shipping"].base_url, token, watcher, 4, uuid.uuid4().hex[:6])
        smoke = driver.create(1, None, stop)
        wait_seen(watcher, smoke, 30)
        if smoke[0].reference not in watcher.ready:
            core.print_logs(servers)
            raise SystemExit(f"the smoke-test shipment was not ready after 30 s: {smoke[0].error}")
        driver.create(20, args.rate, stop)  # warm-up

        count = max(1, round(args.rate * args.seconds))
        for r in range(args.saga_rounds):
            for name in ("idle", "during") if r % 2 == 0 else ("during", "idle"):
                print(
                    f"round {r + 1}/{args.saga_rounds}: {name}, {count} shipments at {args.rate:g}/s ...",
                    file=sys.stderr,
                )
                loop = ImportLoop(env, files, args.chunk_size) if name == "during" else None
                if loop is not None:
                    stack.callback(loop.kill)
                    loop.start()
                    time.sleep(0.5)  # its start-up: the phase begins with the import under way
                cpu = CpuMeter(pids)
                sent = driver.create(count, args.rate, stop)
                wait_seen(watcher, sent, 60)
                cpu_line = cpu.read()
                if loop is not None:
                    loop.finish()
                with watcher.lock:
                    ready = {
                        i.reference: watcher.ready[i.reference] for i in sent if i.reference in watcher.ready
                    }
                for item in sent:
                    watcher.forget(item.reference)
                conditions.append(
                    Condition(
                        name,
                        r + 1,
                        sent,
                        ready,
                        stamped(urls["shipping"], sent),
                        cpu_line,
                        stages(urls, sent),
                        loop.runs if loop else [],
                    )
                )
        with watcher.lock:
            cycle = statistics.fmean(watcher.cycles) * 1000 if watcher.cycles else float("nan")
        if any(c.never or c.failed for c in conditions):
            core.print_logs(servers)
    return conditions, cycle


def render_saga(conditions: list[Condition], cycle_ms: float, args: argparse.Namespace) -> list[str]:
    lines = [
        "",
        f"Part 2: time to ready, ms, shipments at {args.rate:g}/s for {args.seconds:g} s per phase; "
        f"imports of {args.rows:,} counted rows in chunks of {args.chunk_size} during 'during'",
        f"  observed: first poll of shipping's database that saw it ready (every {args.poll_ms:g} ms, "
        f"mean cycle {cycle_ms:.1f} ms); stamped: its `ready` history entry",
    ]
    header = (
        f"{'phase':<12} {'n':>5} {'never':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}  "
        f"{'stamped p50':>11} {'p99':>7}  imports (runs: s each, exit status)"
    )
    lines += [header, "-" * len(header)]

    def row(label: str, observed: list[float], stamped_ms: list[float], never: int, note: str) -> None:
        cells = " ".join(f"{percentile(observed, q):>7.1f}" for q in (50, 90, 99))
        top = f"{max(observed):>7.1f}" if observed else f"{'-':>7}"
        lines.append(
            f"{label:<12} {len(observed):>5} {never:>6} {cells} {top}  "
            f"{percentile(stamped_ms, 50):>11.1f} {percentile(stamped_ms, 99):>7.1f}  {note}"
        )

    for c in conditions:
        runs = ", ".join(f"{seconds:.1f}s:{status}" for seconds, status, _ in c.runs)
        row(f"{c.name} r{c.round}", c.observed_ms, list(c.stamped_ms.values()), c.never, runs)
    lines.append("")
    pooled = {}
    for name in ("idle", "during"):
        group = [c for c in conditions if c.name == name]
        observed = [v for c in group for v in c.observed_ms]
        pooled[name] = observed
        row(
            f"{name} (all)",
            observed,
            [v for c in group for v in c.stamped_ms.values()],
            sum(c.never for c in group),
            "",
        )
    if pooled["idle"] and pooled["during"]:
        lines.append(
            f"  during / idle: p50 {percentile(pooled['during'], 50) / percentile(pooled['idle'], 50):.2f}x, "
            f"p99 {percentile(pooled['during'], 99) / percentile(pooled['idle'], 99):.2f}x"
        )
    lines += ["", "Where the time to ready went, ms (p50 / p99 over every shipment of the condition):"]
    lines.append(f"  {'stage':<28} {'idle':>17} {'during':>17}")
    for stage, _, _ in STAGES:
        cells = []
        for name in ("idle", "during"):
            values = [v for c in conditions if c.name == name for v in c.stages[stage]]
            cells.append(f"{percentile(values, 50):>7.1f} / {percentile(values, 99):>7.1f}")
        lines.append(f"  {stage:<28} {cells[0]:>17} {cells[1]:>17}")
    runs = [(seconds, status) for c in conditions for seconds, status, _ in c.runs]
    if runs:
        done = [s for s, status in runs if status == 0]
        lines.append(
            f"  imports during the saga: {len(runs)} runs, exit status {sorted({s for _, s in runs})}; "
            + (
                f"median {statistics.median(done):.2f} s = {args.rows / statistics.median(done):,.0f} rows/s "
                "(CLI wall clock, start-up included)"
                if done
                else "none finished cleanly"
            )
        )
    summaries = {summary for c in conditions for _, _, summary in c.runs}
    for summary in sorted(summaries)[:3]:
        lines.append(f"    {summary}")
    lines += ["", "Where the CPU went:"]
    lines += [f"  {c.name} r{c.round}: {c.cpu}" for c in conditions]
    return lines


# -- main ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, stop: threading.Event) -> str:
    facts = [
        *machine(),
        ("database", postgres_facts(args.pg_url)),
        ("software", software(libraries("psycopg", "SQLAlchemy", "marshmallow"))),
    ]
    if not args.skip_saga:
        facts.insert(2, ("broker", broker_version(args.broker_url)))
    lines = ["", "Bulk import benchmark (PostgreSQL)", "", *fact_lines(facts, 13)]
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        if not args.skip_throughput:
            lines += render_throughput(throughput(args, Path(tmp), stop), args)
        if not args.skip_saga:
            conditions, cycle = saga(args, Path(tmp), stop)
            lines += render_saga(conditions, cycle, args)
    lines += ["", f"  load average {load_average()} (at end) · {os.cpu_count()} cores", ""]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows per import file; default 20000")
    parser.add_argument("--baseline-rows", type=int, default=1000, help="rows for row by row; default 1000")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds; default 3")
    parser.add_argument(
        "--chunk-size", type=int, default=1000, help="the import's --chunk-size; default 1000"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="shipments/s in part 2; default 10")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each part 2 phase; default 20")
    parser.add_argument("--saga-rounds", type=int, default=2, help="idle/during rounds; default 2")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="ready poller interval; default 10")
    parser.add_argument("--skip-throughput", action="store_true", help="part 2 only")
    parser.add_argument("--skip-saga", action="store_true", help="part 1 only")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server; default {PG_URL}")
    parser.add_argument("--broker-url", default=BROKER_URL, help=f"RabbitMQ; default {BROKER_URL}")
    args = parser.parse_args()
    if min(args.rows, args.baseline_rows, args.rounds, args.chunk_size, args.saga_rounds) < 1:
        parser.error("--rows, --baseline-rows, --rounds, --chunk-size and --saga-rounds must be positive")
    if args.rows <= len(SKUS) or args.baseline_rows > args.rows:
        parser.error(f"--rows must exceed {len(SKUS)} and be at least --baseline-rows")
    if min(args.rate, args.seconds, args.poll_ms) <= 0:
        parser.error("--rate, --seconds and --poll-ms must be positive")
    return args


def main() -> int:
    args = parse_args()
    return stoppable_main(lambda stop: (run(args, stop), False))


if __name__ == "__main__":
    sys.exit(main())

"""The fulfilment saga end to end, in the deployment shape: shipments created over HTTP -> ready.

    .venv/bin/python bench/saga.py [--rate 20] [--seconds 15] [--threads 4] [--burst 200]
                                   [--poll-ms 10] [--receipts-seconds 5] [--web-threads 8]
                                   [--settle 30] [--pg-url ...] [--broker-url ...]

One run, on one machine, against the machine's PostgreSQL and RabbitMQ:

* two fresh databases (``bench_saga_inventory``, ``bench_saga_shipping``, dropped first if they
  exist), migrated with ``logistics_shared.migrations.upgrade``, and a fresh bus namespace
  ``benchsaga<hex>``;
* four real subprocesses: ``logistics serve inventory|shipping`` and
  ``logistics worker inventory|shipping --health-port <free>``, each waited for on /readyz;
* one warehouse, 50 items and plenty of stock, seeded through the inventory API.

A shipment is *ready* when the shipping relay has published ``shipment.requested``, the
inventory worker has reserved its stock and relayed ``stock.reserved``, and the shipping worker
has handled that. Each shipment asks for 1 unit of two SKUs (round robin over the 50 items).

Phases, in order (the baseline runs right before the burst, so both sides of the ratio see the
same machine):

(s) steady: one ``POST /v1/shipments`` every 1/``--rate`` s for ``--seconds`` (open loop, sent by
    ``--threads`` clients so a slow POST does not delay the schedule).
(r) baseline: ``POST /v1/receipts`` (1 unit, round robin over the SKUs) as fast as ``--threads``
    keep-alive HTTP clients can, for ``--receipts-seconds`` after a 1 s warm-up: one HTTP write
    with no saga behind it.
(b) burst: ``--burst`` shipments as fast as ``--threads`` clients can create them; timed from
    the first POST to the last shipment observed ready.

Time to ready, from the moment just before the shipment's POST, two ways:
observed: the first poll that saw it ``ready`` (an upper bound). One poller thread lists
    ``GET /v1/shipments?status=ready&since=<oldest pending POST>`` every ``--poll-ms`` (only
    while something is pending), so the resolution is one poll cycle, printed with the results.
    The poller's requests load the shipping web process too.
stamped: the ``at`` of the shipment's ``ready`` history entry minus the wall clock before the
    POST (a lower bound: taken in the handler, before the consumer's batch commits), read back
    after the phase.

Nothing asserts. The ratio (b) shipments ready/s / (r) receipts/s is the result; absolute
numbers from a noisy 2-core machine do not compare between runs. Every subprocess is stopped,
both databases dropped and every queue and exchange of the namespace deleted at the end, also
on errors, Ctrl-C or SIGTERM (exit status 130). Deleting the queues needs ``rabbitmqctl``.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import http.client
import json
import math
import platform
import queue
import signal
import statistics
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any, Self

import benchkit
import psycopg
from benchkit import ADDRESS, INITIAL_STOCK, SKUS, WAREHOUSE, Server, free_port
from bus import broker_version, delete_namespace, make_settings, percentile

from logistics_shared.migrations import upgrade
from logistics_shared.service import discover

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
DATABASES = {"inventory": "bench_saga_inventory", "shipping": "bench_saga_shipping"}
LINES_PER_SHIPMENT = 2
SMOKE_TIMEOUT = 30.0
WARMUP_SHIPMENTS = 20


# -- a keep-alive HTTP client (one per thread) -----------------------------------------------------


class Client:
    """One HTTP/1.1 keep-alive connection with a bearer token; not thread-safe (one per thread)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        # A GET may be retried once on a connection the server closed; a POST never is (it
        # could create a shipment twice), its failure is counted instead.
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if method == "GET" and reused and attempt == 1:
                    continue
                raise
            if response.will_close:
                self.close()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, raw.decode(errors="replace")
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


# -- the ready watcher: one poller instead of one per shipment -------------------------------------


class Watcher:
    """Polls the shipping list for ready shipments; matches them to pending POSTs by reference.

    A shipment is registered *before* its POST (with the wall-clock time then, which is at most
    the server's ``created_at``), so the ``since`` window always covers every pending shipment,
    even one whose POST has not answered yet.
    """

    def __init__(self, base_url: str, token: str, interval: float) -> None:
        self.base_url, self.token, self.interval = base_url, token, interval
        self.lock = threading.Lock()
        self.pending: dict[str, datetime] = {}
        self.ready: dict[str, float] = {}
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.polls = 0
        self.poll_seconds = 0.0
        self.cycles: list[float] = []
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name="ready-watcher", daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join(5)

    def expect(self, reference: str, wall: datetime) -> None:
        with self.lock:
            self.pending[reference] = wall
        self.wake.set()

    def forget(self, reference: str) -> None:
        with self.lock:
            self.pending.pop(reference, None)

    def outstanding(self, references: set[str]) -> int:
        with self.lock:
            return sum(reference in self.pending for reference in references)

    def reset_stats(self) -> None:
        with self.lock:
            self.polls, self.poll_seconds, self.cycles, self.errors = 0, 0.0, [], 0

    def _run(self) -> None:
        client = Client(self.base_url, self.token)
        previous: float | None = None
        while not self.stop.is_set():
            with self.lock:
                oldest = min(self.pending.values(), default=None)
            if oldest is None:
                previous = None  # an idle gap is not a poll cycle
                self.wake.wait(0.05)
                self.wake.clear()
                continue
            started = time.monotonic()
            seen = self._ready_since(client, oldest - timedelta(seconds=0.25))
            now = time.monotonic()
            with self.lock:
                for reference in seen:
                    if self.pending.pop(reference, None) is not None:
                        self.ready[reference] = now
                self.polls += 1
                self.poll_seconds += now - started
                if previous is not None:
                    self.cycles.append(started - previous)
            previous = started
            self.stop.wait(max(0.0, started + self.interval - time.monotonic()))
        client.close()

    def _ready_since(self, client: Client, since: datetime) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            query = {"status": "ready", "since": since.isoformat(), "limit": "200"}
            if cursor:
                query["cursor"] = cursor
            try:
                status, body = client.request("GET", "/v1/shipments?" + urllib.parse.urlencode(query))
            except (http.client.HTTPException, OSError):
                status, body = 0, None
            if status != 200 or not isinstance(body, dict):
                with self.lock:
                    self.errors += 1
                return seen
            seen.extend(item["reference"] for item in body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                return seen


# -- driving shipments -----------------------------------------------------------------------------


@dataclass
class Sent:
    reference: str
    due: float = 0.0
    start: float = 0.0  # time.monotonic() just before the POST
    wall: datetime | None = None  # the wall clock at the same moment
    end: float = 0.0
    status: int = 0
    error: str = ""
    id: str = ""
    stamped_ms: float | None = None  # shipping's ``ready`` history ``at`` - ``wall``


def shipment_body(reference: str, n: int) -> dict[str, Any]:
    first = (n * LINES_PER_SHIPMENT) % len(SKUS)
    skus = [SKUS[(first + k) % len(SKUS)] for k in range(LINES_PER_SHIPMENT)]
    return {
        "reference": reference,
        "warehouse": WAREHOUSE,
        "ship_to": ADDRESS,
        "lines": [{"sku": sku, "quantity": 1} for sku in skus],
    }


class Driver:
    """Creates shipments over HTTP with ``threads`` keep-alive clients, on a schedule or at once."""

    def __init__(self, base_url: str, token: str, watcher: Watcher, threads: int, run_id: str) -> None:
        self.base_url, self.token, self.watcher, self.threads = base_url, token, watcher, threads
        self.run_id = run_id
        self.counter = 0

    def create(self, count: int, rate: float | None, stop: threading.Event) -> list[Sent]:
        """POST ``count`` shipments: ``rate`` per second (open loop), or all at once if None."""
        start_n = self.counter
        self.counter += count
        sent = [Sent(f"SAGA-{self.run_id}-{start_n + i}") for i in range(count)]
        jobs: queue.Queue[int | None] = queue.Queue()

        def sender() -> None:
            client = Client(self.base_url, self.token)
            try:
                while (i := jobs.get()) is not None:
                    if stop.is_set():
                        continue
                    item = sent[i]
                    item.wall = datetime.now(UTC)
                    self.watcher.expect(item.reference, item.wall)
                    item.start = time.monotonic()
                    try:
                        status, body = client.request(
                            "POST", "/v1/shipments", shipment_body(item.reference, start_n + i)
                        )
                    except (http.client.HTTPException, OSError) as exc:
                        status, body = 0, f"{exc.__class__.__name__}: {exc}"
                    item.end = time.monotonic()
                    item.status = status
                    if status == 201 and isinstance(body, dict):
                        item.id = str(body.get("id", ""))
                    if status != 201:
                        item.error = f"{status}: {str(body)[:300]}"
                        self.watcher.forget(item.reference)
            finally:
                client.close()

        workers = [
            threading.Thread(target=sender, name=f"sender-{k}", daemon=True) for k in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        try:
            begin = time.monotonic()
            for i in range(count):
                due = begin + i / rate if rate else begin
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                sent[i].due = due
                jobs.put(i)
        except BaseException:
            stop.set()  # interrupted: the senders drop what is still queued
            raise
        finally:
            for _ in workers:
                jobs.put(None)
            for worker in workers:
                worker.join()
        return sent


def wait_ready(watcher: Watcher, sent: list[Sent], timeout: float) -> None:
    references = {item.reference for item in sent if item.status == 201}
    deadline = time.monotonic() + timeout
    while watcher.outstanding(references) and time.monotonic() < deadline:
        time.sleep(0.02)


def stamp_ready(client: Client, watcher: Watcher, sent: list[Sent]) -> None:
    """Read when shipping recorded each ``ready`` transition (its history's ``at``).

    ``at`` is taken in the handler, before the consumer commits its batch: a lower bound of when
    the shipment became visibly ready, as the first poll that saw it is an upper bound. Both
    clocks are this machine's wall clock. Looked up after the phase, outside the timed window.
    """
    for item in sent:
        if item.reference not in watcher.ready or not item.id or item.wall is None:
            continue
        status, body = client.request("GET", f"/v1/shipments/{item.id}")
        if status != 200 or not isinstance(body, dict):
            continue
        for change in body.get("history", []):
            if change.get("to_status") == "ready":
                at = datetime.fromisoformat(change["at"])
                item.stamped_ms = (at - item.wall).total_seconds() * 1000
                break


def never_ready(client: Client, watcher: Watcher, sent: list[Sent], lookups: int = 50) -> Counter[str]:
    """Status of created shipments never observed ready (looked up for the first ``lookups``)."""
    statuses: Counter[str] = Counter()
    missing = [item for item in sent if item.status == 201 and item.reference not in watcher.ready]
    for item in missing[:lookups]:
        status, body = client.request(
            "GET", "/v1/shipments?" + urllib.parse.urlencode({"reference": item.reference})
        )
        rows = body.get("items") if status == 200 and isinstance(body, dict) else None
        statuses[rows[0]["status"] if rows else f"lookup {status}"] += 1
    if len(missing) > lookups:
        statuses["(not looked up)"] += len(missing) - lookups
    return statuses


# -- CPU accounting --------------------------------------------------------------------------------


#: Processes of the machine grouped by command name, for the rest of the CPU.
SHARED_SERVERS = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ"}


def _all_processes_cpu() -> dict[int, tuple[str, float]]:
    """User+system CPU seconds and command name of every process (one /proc scan)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                raw = stat.read()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 1 :].split()
            found[int(entry)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


class CpuMeter:
    """Where the machine's CPU went during a phase: our processes, PostgreSQL, RabbitMQ, the rest.

    Processes that exited during the phase are missing from the groups (their CPU lands in
    "other"); PostgreSQL backends of pooled connections live for the whole run.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, tuple[float, float], dict[int, tuple[str, float]]]:
        return time.monotonic(), _machine_cpu(), _all_processes_cpu()

    def read(self) -> str:
        (t0, (busy0, total0), before), (t1, (busy1, total1), after) = self.start, self._sample()
        wall = t1 - t0
        if wall <= 0 or total1 <= total0:
            return "cpu: n/a"

        def used(pid: int) -> float:
            return after.get(pid, ("", 0.0))[1] - before.get(pid, ("", 0.0))[1]

        busy = busy1 - busy0
        parts = [f"machine {100 * busy / (total1 - total0):.0f}% busy of {os.cpu_count()} cores"]
        accounted = 0.0
        for name, pid in self.pids.items():
            accounted += used(pid)
            parts.append(f"{name} {100 * used(pid) / wall:.0f}%")
        ours = set(self.pids.values())
        for comm, label in SHARED_SERVERS.items():
            group = sum(used(pid) for pid, (c, _) in after.items() if c == comm and pid not in ours)
            accounted += group
            parts.append(f"{label} {100 * group / wall:.0f}%")
        parts.append(f"other {100 * max(0.0, busy - accounted) / wall:.0f}%")
        return "cpu (% of one core): " + " · ".join(parts)


# -- phases ----------------------------------------------------------------------------------------


@dataclass
class Receipts:
    count: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    cpu: str

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def post_receipts(
    base_url: str, token: str, threads: int, seconds: float, stop: threading.Event
) -> tuple[int, int, float, list[float]]:
    """Closed loop: each client POSTs one receipt after another until ``seconds`` have passed."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    ends: list[float] = []
    begin = time.monotonic()
    deadline = begin + seconds

    def loop(k: int) -> None:
        client = Client(base_url, token)
        n = k
        mine: list[float] = []
        failed = 0
        last = begin
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                body = {"warehouse": WAREHOUSE, "sku": SKUS[n % len(SKUS)], "quantity": 1}
                n += threads
                started = time.monotonic()
                try:
                    status, _ = client.request("POST", "/v1/receipts", body)
                except (http.client.HTTPException, OSError):
                    status = 0
                last = time.monotonic()
                if status == 201:
                    mine.append((last - started) * 1000)
                else:
                    failed += 1
        finally:
            client.close()
            with lock:
                latencies.extend(mine)
                errors[0] += failed
                ends.append(last)

    workers = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(latencies), errors[0], max(ends, default=begin) - begin, latencies


def measure_receipts(
    base_url: str, token: str, args: argparse.Namespace, pids: dict[str, int], stop: threading.Event
) -> Receipts:
    post_receipts(base_url, token, args.threads, 1.0, stop)  # warm-up, discarded
    print(f"measuring (r) POST /v1/receipts for {args.receipts_seconds:g}s ...", file=sys.stderr)
    cpu = CpuMeter(pids)
    count, errors, seconds, latencies = post_receipts(
        base_url, token, args.threads, args.receipts_seconds, stop
    )
    return Receipts(count, errors, seconds, latencies, cpu.read())


@dataclass
class Phase:
    name: str
    sent: list[Sent]
    ready: dict[str, float]
    never: Counter[str]
    cpu: str
    target_rate: float | None = None
    latencies_ms: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.latencies_ms = [
            (self.ready[item.reference] - item.start) * 1000
            for item in self.created
            if item.reference in self.ready
        ]

    @property
    def attempted(self) -> list[Sent]:
        return [item for item in self.sent if item.start]

    @property
    def created(self) -> list[Sent]:
        return [item for item in self.sent if item.status == 201]

    @property
    def failed(self) -> list[Sent]:
        return [item for item in self.attempted if item.status != 201]

    @property
    def never_ready(self) -> int:
        return sum(item.reference not in self.ready for item in self.created)

    @property
    def first_post(self) -> float:
        return min(item.start for item in self.attempted)

    @property
    def posts_rate(self) -> float:
        """Created per second: first POST start -> last 201 (burst); between POST starts (steady)."""
        created = self.created
        if len(created) < 2:
            return float("nan")
        if self.target_rate:
            span = max(item.start for item in created) - min(item.start for item in created)
            return (len(created) - 1) / span if span > 0 else float("nan")
        span = max(item.end for item in created) - self.first_post
        return len(created) / span if span > 0 else float("nan")

    @property
    def ready_span(self) -> float:
        """First POST start -> last shipment observed ready."""
        times = [self.ready[item.reference] for item in self.created if item.reference in self.ready]
        return max(times) - self.first_post if times else float("nan")

    @property
    def ready_rate(self) -> float:
        span = self.ready_span
        return len(self.latencies_ms) / span if span > 0 else float("nan")

    @property
    def max_lag_ms(self) -> float:
        lags = [(item.start - item.due) * 1000 for item in self.attempted]
        return max(lags) if lags else float("nan")

    @property
    def stamped_ms(self) -> list[float]:
        return [item.stamped_ms for item in self.created if item.stamped_ms is not None]

    def post_ms(self, q: float) -> float:
        return percentile([(item.end - item.start) * 1000 for item in self.created], q)


def run_shipments(
    name: str,
    driver: Driver,
    count: int,
    rate: float | None,
    args: argparse.Namespace,
    pids: dict[str, int],
    check: Client,
    stop: threading.Event,
) -> Phase:
    driver.watcher.reset_stats()
    cpu = CpuMeter(pids)
    sent = driver.create(count, rate, stop)
    wait_ready(driver.watcher, sent, args.settle)
    cpu_line = cpu.read()
    with driver.watcher.lock:
        ready = dict(driver.watcher.ready)
    never = never_ready(check, driver.watcher, sent)
    stamp_ready(check, driver.watcher, sent)
    for item in sent:
        driver.watcher.forget(item.reference)
    return Phase(name, sent, ready, never, cpu_line, target_rate=rate)


def smoke_test(driver: Driver, stop: threading.Event, servers: list[Server]) -> None:
    """One shipment must become ready, or the run stops with every server's log."""
    sent = driver.create(1, None, stop)
    if sent[0].status != 201:
        raise SystemExit(f"POST /v1/shipments failed: {sent[0].error}")
    wait_ready(driver.watcher, sent, SMOKE_TIMEOUT)
    if sent[0].reference not in driver.watcher.ready:
        logs = "\n".join(f"--- {server.name} log (tail) ---\n{server.output()}" for server in servers)
        raise SystemExit(f"the smoke-test shipment was not ready after {SMOKE_TIMEOUT:.0f}s\n{logs}")


# -- set-up and clean-up ---------------------------------------------------------------------------


@contextmanager
def migrated_databases(args: argparse.Namespace, var_dir: str) -> Iterator[dict[str, str]]:
    specs = discover()
    with (
        benchkit.inventory_database("postgres", DATABASES["inventory"], args.pg_url) as inv_url,
        benchkit.inventory_database("postgres", DATABASES["shipping"], args.pg_url) as ship_url,
    ):
        urls = {"inventory": inv_url, "shipping": ship_url}
        for name, url in urls.items():
            upgrade(specs[name], make_settings(name, url, args.broker_url, "unused", var_dir))
        yield urls


def environment(
    urls: dict[str, str], args: argparse.Namespace, namespace: str, var_dir: str
) -> dict[str, str]:
    """Every subprocess (and the CLI) gets the same environment, as one deployment would."""
    env = benchkit.service_env(urls["inventory"], var_dir, args.web_threads)
    env.update(
        LOGISTICS_SHIPPING_DATABASE_URL=urls["shipping"],
        LOGISTICS_BROKER_URL=args.broker_url,
        LOGISTICS_BUS_NAMESPACE=namespace,
    )
    return env


def top_up_stock(base_url: str, token: str, shipments: int) -> None:
    """Seeded stock covers every shipment of the run (with a wide margin), so none goes on hold."""
    needed = math.ceil(shipments * LINES_PER_SHIPMENT / len(SKUS)) * 2 + 50
    if needed <= INITIAL_STOCK:
        return
    post = benchkit.http_seeder(base_url, token)
    for sku in SKUS:
        post("/v1/receipts", {"warehouse": WAREHOUSE, "sku": sku, "quantity": needed - INITIAL_STOCK})


def safely_delete_namespace(broker_url: str, namespace: str) -> None:
    try:
        delete_namespace(broker_url, namespace, [])
    except Exception as exc:
        print(f"could not delete the queues of {namespace}: {exc}", file=sys.stderr)


# -- output ----------------------------------------------------------------------------------------


def machine_facts(args: argparse.Namespace) -> list[tuple[str, str]]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or platform.machine()
    with suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    libs = " · ".join(f"{name} {version(name)}" for name in ("waitress", "kombu", "psycopg", "SQLAlchemy"))
    try:
        with psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres") as conn:
            sync = conn.execute("SHOW synchronous_commit").fetchone()
        database = f"{benchkit.postgres_version(args.pg_url)} · synchronous_commit={sync[0] if sync else '?'}"
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach PostgreSQL at {args.pg_url}: {exc}") from None
    return [
        ("cores", f"{os.cpu_count()} ({usable} usable) · {model}"),
        ("load average", f"{load} (at start)"),
        ("broker", broker_version(args.broker_url)),
        ("database", database),
        ("software", f"Python {platform.python_version()} · {libs}"),
        (
            "processes",
            f"logistics serve inventory|shipping (--threads {args.web_threads}) · "
            "logistics worker inventory|shipping (1 consumer + relay each), default settings",
        ),
        (
            "load shape",
            f"{args.threads} HTTP clients (keep-alive) · {LINES_PER_SHIPMENT} lines of 1 unit per shipment · "
            f"ready poller every {args.poll_ms:g} ms",
        ),
    ]


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def render(
    facts: list[tuple[str, str]],
    receipts: Receipts,
    steady: Phase,
    burst: Phase,
    poll: dict[str, float],
    args: argparse.Namespace,
) -> str:
    lines = [
        "",
        "Saga benchmark: POST /v1/shipments -> ready (shipment.requested -> reserve -> stock.reserved "
        "-> ready), 4 real processes",
        "",
    ]
    lines += [f"  {key:<13} {value}" for key, value in facts]
    header = f"{'measurement':<58} {'count':>6} {'seconds':>8} {'per s':>8}  note"
    lines += ["", header, "-" * len(header)]

    def row(label: str, count: int, seconds: float, rate: float, note: str = "") -> None:
        lines.append(f"{label:<58} {count:>6} {seconds:>8.2f} {rate:>8.1f}  {note}")

    row(
        f"(r) POST /v1/receipts round trips, {args.threads} clients",
        receipts.count,
        receipts.seconds,
        receipts.rate,
        f"baseline: one HTTP write, no saga; {receipts.errors} errors",
    )
    row(
        f"(b) burst: {len(burst.sent)} shipments, first POST -> last ready",
        len(burst.latencies_ms),
        burst.ready_span,
        burst.ready_rate,
        f"{args.threads} clients; THE END-TO-END RATE",
    )
    row(
        "    its POSTs alone: first POST -> last 201",
        len(burst.created),
        max((item.end for item in burst.created), default=burst.first_post) - burst.first_post,
        burst.posts_rate,
        f"{len(burst.failed)} failed",
    )
    row(
        f"(s) steady: target {args.rate:g}/s for {args.seconds:g}s, POSTs achieved",
        len(steady.created),
        max((item.start for item in steady.created), default=0.0)
        - min((item.start for item in steady.created), default=0.0),
        steady.posts_rate,
        f"{len(steady.failed)} failed; max schedule lag {_ms(steady.max_lag_ms)} ms",
    )
    row(
        "    its shipments: first POST -> last ready",
        len(steady.latencies_ms),
        steady.ready_span,
        steady.ready_rate,
    )

    lines += [
        "",
        "Time to ready, ms, from just before the POST:",
        f"  observed = the first poll that saw it ready: an upper bound, resolution one poll cycle "
        f"(mean {_ms(poll['cycle_ms'])} ms)",
        "  stamped  = the `at` of shipping's `ready` history entry: a lower bound (taken in the handler,",
        "             before the consumer commits its batch); read back after the phase",
    ]
    header = (
        f"{'phase':<20} {'measure':<10} {'n':>5} {'never':>6} {'p50':>7} {'p90':>7} {'p99':>7} "
        f"{'max':>7}   {'POST p50':>8} {'POST p99':>8}"
    )
    lines += [header, "-" * len(header)]

    def latency_row(name: str, measure: str, values: list[float], never: str = "", post: str = "") -> None:
        lines.append(
            f"{name:<20} {measure:<10} {len(values):>5} {never:>6} {_ms(percentile(values, 50)):>7} "
            f"{_ms(percentile(values, 90)):>7} {_ms(percentile(values, 99)):>7} "
            f"{_ms(max(values) if values else float('nan')):>7}   {post}"
        )

    for phase in (steady, burst):
        post = f"{_ms(phase.post_ms(50)):>8} {_ms(phase.post_ms(99)):>8}"
        latency_row(phase.name, "observed", phase.latencies_ms, str(phase.never_ready), post)
        latency_row("", "stamped", phase.stamped_ms)
    latency_row("(r) receipts", "round trip", receipts.latencies_ms)
    for phase in (steady, burst):
        if phase.never:
            found = ", ".join(f"{status} {count}" for status, count in phase.never.most_common())
            lines.append(f"  !!! {phase.name}: never observed ready: {found}")
        if phase.failed:
            errors = Counter(item.error[:120] for item in phase.failed)
            for error, count in errors.most_common(3):
                lines.append(f"  !!! {phase.name}: {count} POSTs failed: {error}")

    ratio = burst.ready_rate / receipts.rate if receipts.rate else float("nan")
    lines += [
        "",
        "Ratio:",
        f"  (b) shipments ready/s / (r) receipts/s      {ratio:6.3f}   "
        f"({burst.ready_rate:.1f} / {receipts.rate:.1f}, same {args.threads} clients)",
        f"  (b) POSTs alone / (r) receipts/s            {burst.posts_rate / receipts.rate:6.3f}",
        "",
        "Where the CPU went:",
        f"  (r) {receipts.cpu}",
        f"  (s) {steady.cpu}",
        f"  (b) {burst.cpu}",
        f"  poller: {poll['polls']:.0f} polls, mean {_ms(poll['poll_ms'])} ms each, "
        f"{poll['errors']:.0f} failed (its requests load the shipping web process too)",
    ]
    for phase in (steady, burst):
        if phase.latencies_ms and phase.stamped_ms:
            lines.append(
                f"  {phase.name} time to ready: mean observed {statistics.fmean(phase.latencies_ms):.1f} ms, "
                f"mean stamped {statistics.fmean(phase.stamped_ms):.1f} ms"
            )
    lines.append("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, stop: threading.Event) -> str:
    namespace = f"benchsaga{uuid.uuid4().hex[:8]}"
    facts = machine_facts(args)
    cli = benchkit.logistics_cli()
    with ExitStack() as stack:
        # Unwound last to first: servers stop, then databases drop, then the queues go.
        stack.callback(safely_delete_namespace, args.broker_url, namespace)
        var_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-saga-"))
        print("creating and migrating bench_saga_inventory and bench_saga_shipping ...", file=sys.stderr)
        urls = stack.enter_context(migrated_databases(args, var_dir))
        env = environment(urls, args, namespace, var_dir)
        token = benchkit.admin_token(env)

        servers: list[Server] = []
        bases: dict[str, str] = {}
        for service in ("inventory", "shipping"):
            port = free_port()
            bases[service] = f"http://127.0.0.1:{port}"
            argv = [cli, "serve", service, f"--port={port}", f"--threads={args.web_threads}"]
            servers.append(Server(f"{service} web", argv, ready_url=f"{bases[service]}/readyz", env=env))
        for service in ("inventory", "shipping"):
            port = free_port()
            argv = [cli, "worker", service, f"--health-port={port}"]
            servers.append(
                Server(f"{service} worker", argv, ready_url=f"http://127.0.0.1:{port}/readyz", env=env)
            )
        print(f"starting 2 web processes and 2 workers (bus namespace {namespace}) ...", file=sys.stderr)
        for server in servers:
            stack.enter_context(server)
        pids = {server.name: server.process.pid for server in servers if server.process is not None}
        pids["bench client"] = os.getpid()

        print(f"seeding 1 warehouse, {len(SKUS)} items and their stock ...", file=sys.stderr)
        benchkit.seed(benchkit.http_seeder(bases["inventory"], token))
        total = WARMUP_SHIPMENTS + 1 + math.ceil(args.rate * args.seconds) + args.burst
        top_up_stock(bases["inventory"], token, total)

        watcher = stack.enter_context(Watcher(bases["shipping"], token, args.poll_ms / 1000))
        check = Client(bases["shipping"], token)
        stack.callback(check.close)
        driver = Driver(bases["shipping"], token, watcher, args.threads, uuid.uuid4().hex[:6])
        smoke_test(driver, stop, servers)
        print(f"warming up with {WARMUP_SHIPMENTS} shipments ...", file=sys.stderr)
        run_shipments("warm-up", driver, WARMUP_SHIPMENTS, args.rate, args, pids, check, stop)

        print(f"measuring (s) steady {args.rate:g} shipments/s for {args.seconds:g}s ...", file=sys.stderr)
        count = max(1, round(args.rate * args.seconds))
        steady = run_shipments(
            f"(s) steady {args.rate:g}/s", driver, count, args.rate, args, pids, check, stop
        )
        with watcher.lock:
            cycles = list(watcher.cycles)
            poll = {
                "polls": float(watcher.polls),
                "poll_ms": watcher.poll_seconds / watcher.polls * 1000 if watcher.polls else float("nan"),
                "errors": float(watcher.errors),
            }
        time.sleep(1.0)

        # Right before the burst, so the two sides of the ratio see the same machine.
        receipts = measure_receipts(bases["inventory"], token, args, pids, stop)
        time.sleep(1.0)  # let the inventory relay drain the receipts' events

        print(f"measuring (b) burst of {args.burst} shipments ...", file=sys.stderr)
        burst = run_shipments(f"(b) burst {args.burst}", driver, args.burst, None, args, pids, check, stop)
        with watcher.lock:
            cycles += watcher.cycles
            poll["polls"] += watcher.polls
            poll["errors"] += watcher.errors
        poll["cycle_ms"] = statistics.fmean(cycles) * 1000 if cycles else float("nan")
        if steady.failed or burst.failed or steady.never or burst.never:
            for server in servers:
                print(f"--- {server.name} log (tail) ---\n{server.output()}", file=sys.stderr)
        return render(facts, receipts, steady, burst, poll, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="shipments/s in the steady phase; default 20"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="steady phase length; default 15")
    parser.add_argument(
        "--threads", type=int, default=4, help="HTTP clients for the burst and the receipts; default 4"
    )
    parser.add_argument("--burst", type=int, default=200, help="shipments in the burst phase; default 200")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="ready poller interval; default 10")
    parser.add_argument(
        "--receipts-seconds", type=float, default=5.0, help="receipts baseline length; default 5"
    )
    parser.add_argument(
        "--web-threads",
        type=int,
        default=8,
        help="waitress threads per web process; default 8 (the CLI's default)",
    )
    parser.add_argument(
        "--settle", type=float, default=30.0, help="seconds to wait for stragglers after a phase; default 30"
    )
    parser.add_argument(
        "--pg-url", default=benchkit.PG_URL, help=f"PostgreSQL server; default {benchkit.PG_URL}"
    )
    parser.add_argument("--broker-url", default=BROKER_URL, help=f"RabbitMQ; default {BROKER_URL}")
    args = parser.parse_args()
    if min(args.rate, args.seconds, args.threads, args.burst, args.poll_ms, args.receipts_seconds) <= 0:
        parser.error(
            "--rate, --seconds, --threads, --burst, --poll-ms and --receipts-seconds must be positive"
        )
    if args.web_threads < 1 or args.settle < 0:
        parser.error("--web-threads must be positive, --settle not negative")
    return args


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C: subprocesses stopped, databases dropped, queues deleted.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stop = threading.Event()
    try:
        report = run(args, stop)
    except KeyboardInterrupt:
        stop.set()
        print("\ninterrupted: processes stopped, bench databases dropped, queues deleted", file=sys.stderr)
        return 130
    finally:
        stop.set()
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import math
import statistics
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kit import core
from kit.broker import broker_version, safely_delete_namespace
from kit.core import BROKER_URL, INITIAL_STOCK, PG_URL, SKUS, WAREHOUSE, Server, stoppable_main
from kit.cpu import CpuMeter
from kit.databases import migrated_databases, postgres_facts
from kit.facts import libraries, machine, software
from kit.facts import lines as fact_lines
from kit.shipments import LINES_PER_SHIPMENT, Client, Driver, Poller, Sent, wait_seen
from kit.stats import ms, ms_max, percentile

DATABASES = {"inventory": "bench_saga_inventory", "shipping": "bench_saga_shipping"}
SMOKE_TIMEOUT = 30.0
WARMUP_SHIPMENTS = 20


# -- the ready watcher: one poller instead of one per shipment -------------------------------------


class Watcher(Poller):
    """Polls the shipping list for ready shipments; matches them to pending POSTs by reference.

    A shipment is registered *before* its POST (with the wall-clock time then, which is at most
    the server's ``created_at``), so the ``since`` window always covers every pending shipment,
    even one whose POST has not answered yet.
    """

    def __init__(self, base_url: str, token: str, interval: float) -> None:
        super().__init__("ready-watcher")
        self.base_url, self.token, self.interval = base_url, token, interval
        self.ready: dict[str, float] = {}
        self.polls = 0
        self.poll_seconds = 0.0
        self.cycles: list[float] = []
        self.errors = 0

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


# -- after a phase ---------------------------------------------------------------------------------


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
    driver: Driver[Watcher],
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
    wait_seen(driver.watcher, sent, args.settle)
    cpu_line = cpu.read()
    with driver.watcher.lock:
        ready = dict(driver.watcher.ready)
    never = never_ready(check, driver.watcher, sent)
    stamp_ready(check, driver.watcher, sent)
    for item in sent:
        driver.watcher.forget(item.reference)
    return Phase(name, sent, ready, never, cpu_line, target_rate=rate)


def smoke_test(driver: Driver[Watcher], stop: threading.Event, servers: list[Server]) -> None:
    """One shipment must become ready, or the run stops with every server's log."""
    sent = driver.create(1, None, stop)
    if sent[0].status != 201:
        raise SystemExit(f"POST /v1/shipments failed: {sent[0].error}")
    wait_seen(driver.watcher, sent, SMOKE_TIMEOUT)
    if sent[0].reference not in driver.watcher.ready:
        logs = "\n".join(f"--- {server.name} log (tail) ---\n{server.output()}" for server in servers)
        raise SystemExit(f"the smoke-test shipment was not ready after {SMOKE_TIMEOUT:.0f}s\n{logs}")


# -- set-up and clean-up ---------------------------------------------------------------------------


def top_up_stock(base_url: str, token: str, shipments: int) -> None:
    """Seeded stock covers every shipment of the run (with a wide margin), so none goes on hold."""
    needed = math.ceil(shipments * LINES_PER_SHIPMENT / len(SKUS)) * 2 + 50
    if needed <= INITIAL_STOCK:
        return
    post = core.http_seeder(base_url, token)
    for sku in SKUS:
        post("/v1/receipts", {"warehouse": WAREHOUSE, "sku": sku, "quantity": needed - INITIAL_STOCK})


# -- output ----------------------------------------------------------------------------------------


def machine_facts(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [
        *machine(),
        ("broker", broker_version(args.broker_url)),
        ("database", postgres_facts(args.pg_url)),
        ("software", software(libraries("waitress", "kombu", "psycopg", "SQLAlchemy"))),
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
    lines += fact_lines(facts, 13)
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
        f"{len(steady.failed)} failed; max schedule lag {ms(steady.max_lag_ms)} ms",
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
        f"(mean {ms(poll['cycle_ms'])} ms)",
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
            f"{name:<20} {measure:<10} {len(values):>5} {never:>6} {ms(percentile(values, 50)):>7} "
            f"{ms(percentile(values, 90)):>7} {ms(percentile(values, 99)):>7} "
            f"{ms_max(values):>7}   {post}"
        )

    for phase in (steady, burst):
        post = f"{ms(phase.post_ms(50)):>8} {ms(phase.post_ms(99)):>8}"
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
        f"  poller: {poll['polls']:.0f} polls, mean {ms(poll['poll_ms'])} ms each, "
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
    with ExitStack() as stack:
        # Unwound last to first: servers stop, then databases drop, then the queues go.
        stack.callback(safely_delete_namespace, args.broker_url, namespace)
        var_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-saga-"))
        print("creating and migrating bench_saga_inventory and bench_saga_shipping ...", file=sys.stderr)
        urls = stack.enter_context(migrated_databases(args.pg_url, DATABASES, args.broker_url, var_dir))
        env = core.deployment_env(urls, var_dir, args.web_threads, args.broker_url, namespace)
        token = core.admin_token(env)

        webs = {
            service: core.web_server(f"{service} web", service, env, threads=args.web_threads)
            for service in ("inventory", "shipping")
        }
        bases = {service: server.base_url for service, server in webs.items()}
        servers = [
            *webs.values(),
            *(core.worker_server(f"{service} worker", service, env) for service in ("inventory", "shipping")),
        ]
        print(f"starting 2 web processes and 2 workers (bus namespace {namespace}) ...", file=sys.stderr)
        for server in servers:
            stack.enter_context(server)
        pids = {server.name: server.process.pid for server in servers if server.process is not None}
        pids["bench client"] = os.getpid()

        print(f"seeding 1 warehouse, {len(SKUS)} items and their stock ...", file=sys.stderr)
        core.seed(core.http_seeder(bases["inventory"], token))
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
            core.print_logs(servers)
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
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server; default {PG_URL}")
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
    return stoppable_main(lambda stop: (run(args, stop), False))


if __name__ == "__main__":
    sys.exit(main())

"""Webhook delivery: the asyncio dispatcher against a thread-pool baseline, A/B in one run (issue 14).

    .venv/bin/python bench/webhooks.py [--deliveries 20000] [--baseline-deliveries 3000]
                                       [--endpoints 500] [--rounds 3] [--threads 32]
                                       [--receivers 2] [--delay-ms 100,500] [--quick]

One fresh PostgreSQL database (``whbench_<pid>``, shipping's migrations, dropped at the end)
holds ``--endpoints`` enabled endpoints on loopback. Their receivers are ``--receivers``
aiohttp processes (bench/kit/webhook_receiver.py, one port each, the endpoints spread over
them): each request is counted, the first and every 20th after it have their signature
verified with the ``standardwebhooks`` package, and the answer (200) comes after a delay drawn
uniformly from ``--delay-ms``.

Each run starts one sender as a process of its own (bench/kit/webhook_sides.py), waits until
it has reached the database, then this process commits the deliveries in a burst (fan-outs
of one ``shipment.ready`` message to every endpoint, 1,000 deliveries per transaction,
through ``fanout.write_deliveries``, which NOTIFYs the dispatchers) and waits until every
one is recorded delivered. The senders:

(A) the asyncio ``Dispatcher``, as ``logistics dispatcher shipping`` runs it: default
    settings but for the allow-list (``webhook_allow_networks=127.0.0.0/8,::1/128``,
    ``webhook_allow_http=true``); default timeouts (5 s connect, 15 s read), 4 in flight per
    endpoint, 2,000 in all.
(B) the baseline: ``requests`` on a ``ThreadPoolExecutor(--threads)``, claiming and recording
    through the same ``DeliveryStore`` with the same lease, signing and timeouts: only the
    sending model differs. At ~300 ms an answer it does ~100/s, so it gets
    ``--baseline-deliveries`` (3,000 by default), not 20,000; a rate is a rate, but the
    delays of a burst grow with its size, so its p50/p99 are not comparable with (A)'s.

Figures per run, from the database: deliveries/s (deliveries / first creation -> last
successful answer), the end-to-end delay of each delivery (``created_at`` -> its successful
attempt's answer: ``attempted_at`` + latency), peak RSS (the sender's ``VmHWM``, sampled from
/proc/<pid>/status with ``VmRSS`` and ``Threads`` every 50 ms), peak threads, and the
sender's CPU time per delivery. Rounds alternate the order (A B, B A, ...); the table gives
medians and ranges, and the median of the per-round rate ratios against issue 14's goal:
(A) at least 10x (B)'s deliveries/s, at no more peak RSS. Exits 1 when a run did not deliver
everything, a signature failed to verify, or an endpoint saw a delivery twice.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import queue
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kit import core, results
from kit.databases import database, postgres_facts
from kit.facts import libraries, load_average, machine, software
from kit.facts import lines as fact_lines
from kit.stats import percentile

SERVICE = "shipping"
EVENT = "shipment.ready"
#: Issue 14's goal: (A)'s deliveries/s over (B)'s, at no more memory.
GOAL = 10.0
#: Deliveries committed per transaction of the burst.
PER_TRANSACTION = 1000
SIDES = {"asyncio": "(A) asyncio Dispatcher", "threads": "(B) requests + ThreadPoolExecutor"}
KIT = core.BENCH / "kit"


# -- processes -----------------------------------------------------------------------------------


class Child:
    """A subprocess speaking JSON lines on stdout (read by a thread, so waits can time out)."""

    def __init__(self, name: str, argv: list[str], stdin: bool = False) -> None:
        self.name = name
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            cwd=core.REPO,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def message(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise SystemExit(f"{self.name} said nothing in {timeout:.0f} s") from None
        if line is None:
            raise SystemExit(f"{self.name} exited ({self.process.wait()}) before answering")
        return json.loads(line)

    def say(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) and Threads of a process, from /proc/<pid>/status."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Peak RSS and threads of one process, every ``every`` seconds, until stopped."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every = pid, every
        self.rss_kb = self.hwm_kb = self.threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> dict[str, int]:
        status = proc_status(self.pid)
        self.rss_kb = max(self.rss_kb, status.get("VmRSS", 0))
        self.hwm_kb = max(self.hwm_kb, status.get("VmHWM", 0))
        self.threads = max(self.threads, status.get("Threads", 0))
        return status

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sample()
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def receiver_get(port: int, path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# -- the database side ----------------------------------------------------------------------------


@dataclass
class Bench:
    """What this process holds: the settings it hands the senders, its own small engine."""

    config: dict[str, Any]
    config_file: Path
    tables: Any
    factory: Any
    engine: Any
    endpoint_ids: list[str]
    ports: list[int]


def settings_ini(database_url: str, var_dir: str) -> dict[str, Any]:
    """The senders' settings: the defaults but for the database, keys, logs and the allow-list."""
    from cryptography.fernet import Fernet

    return {
        "database_url": database_url,
        "jwt_secret": core.JWT_SECRET,
        "secrets_key": Fernet.generate_key().decode(),
        "var_dir": var_dir,
        "log_level": "WARNING",
        "access_log": "false",
        "webhook_allow_networks": "127.0.0.0/8,::1/128",
        "webhook_allow_http": "true",
    }


def create_endpoints(bench_box: Any, factory: Any, tables: Any, urls: list[str]) -> list[str]:
    now = datetime.now(UTC)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "url": url,
            "description": f"bench receiver {n}",
            "event_types": '["shipment.*"]',
            "warehouses": None,
            "enabled": True,
            "disabled_reason": None,
            "disabled_at": None,
            "secret": bench_box.encrypt(secret),
            "previous_secret": None,
            "previous_secret_until": None,
            "failing_since": None,
            "created_by": "bench",
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for n, (url, secret) in enumerate(urls)
    ]
    with factory() as session, session.begin():
        session.execute(tables.endpoints.insert(), rows)
    return [row["id"] for row in rows]


def produce(bench: Bench, count: int) -> float:
    """Commit ``count`` deliveries: one message to every endpoint after another; seconds taken."""
    from logistics_shared.webhooks.catalogue import Catalogue
    from logistics_shared.webhooks.fanout import new_delivery, write_deliveries

    public = Catalogue(SERVICE).by_type[EVENT]
    started = time.monotonic()
    made = n = 0
    while made < count:
        now = datetime.now(UTC)
        messages: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        while made < count and len(deliveries) < PER_TRANSACTION:
            n += 1
            message_id = str(uuid.uuid4())
            data = {
                "shipment_id": str(uuid.uuid4()),
                "reference": f"BENCH-{n:06d}",
                "warehouse": core.WAREHOUSE,
                "version": 3,
                "status": "ready",
            }
            payload = public.render(data, now.isoformat()).decode()
            messages.append(
                {
                    "id": message_id,
                    "event_type": EVENT,
                    "warehouse": core.WAREHOUSE,
                    "payload": payload,
                    "created_at": now,
                }
            )
            targets = bench.endpoint_ids[: min(len(bench.endpoint_ids), count - made)]
            deliveries.extend(new_delivery(e, message_id, EVENT, now) for e in targets)
            made += len(targets)
        with bench.factory() as session, session.begin():
            write_deliveries(session, bench.tables, messages, deliveries, SERVICE)
    return time.monotonic() - started


def progress(bench: Bench) -> tuple[int, int]:
    from sqlalchemy import text

    with bench.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'delivered'),"
                " count(*) FILTER (WHERE status = 'failed') FROM webhook_deliveries"
            )
        ).one()
    return int(row[0]), int(row[1])


def outcomes(bench: Bench) -> tuple[list[float], list[float], dict[str, int]]:
    """(creation times, successful answer times) in epoch seconds, per delivered delivery;
    attempts by outcome."""
    from sqlalchemy import text

    with bench.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT extract(epoch FROM d.created_at),"
                " min(extract(epoch FROM a.attempted_at) + a.latency_ms / 1000.0)"
                " FROM webhook_deliveries d JOIN webhook_attempts a"
                " ON a.delivery_id = d.id AND a.outcome = 'delivered'"
                " GROUP BY d.id, d.created_at"
            )
        ).all()
        by_outcome = dict(
            conn.execute(text("SELECT outcome, count(*) FROM webhook_attempts GROUP BY outcome")).all()
        )
    return (
        [float(r[0]) for r in rows],
        [float(r[1]) for r in rows],
        {str(k): int(v) for k, v in by_outcome.items()},
    )


def empty_tables(bench: Bench) -> None:
    from sqlalchemy import text

    with bench.engine.begin() as conn:
        conn.execute(text("TRUNCATE webhook_attempts, webhook_deliveries, webhook_messages"))


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Run:
    side: str
    count: int
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    insert_seconds: float = 0.0
    hwm_mb: float = 0.0
    ready_rss_mb: float = 0.0
    threads: int = 0
    cpu_ms_per_delivery: float = 0.0
    cpu_s: float = 0.0
    attempts: dict[str, int] = field(default_factory=dict)
    receivers: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    round: int = 0
    order: int = 0


def one_run(
    bench: Bench, side: str, count: int, threads: int, receivers: list[Child], round_: int, order: int
) -> Run:
    empty_tables(bench)
    for port in bench.ports:
        receiver_get(port, "/reset", "POST")
    run = Run(side, count, round=round_, order=order)
    argv = [
        sys.executable,
        str(KIT / "webhook_sides.py"),
        side,
        str(bench.config_file),
        f"--threads={threads}",
    ]
    child = Child(SIDES[side], argv, stdin=True)
    try:
        child.message(120)  # ready: its first claim reached the database
        sampler = Sampler(child.process.pid)
        ready = sampler.sample()
        run.ready_rss_mb = ready.get("VmRSS", 0) / 1024
        cpu_before = cpu_seconds(child.process.pid)
        receivers_cpu = sum(cpu_seconds(r.process.pid) for r in receivers)
        run.insert_seconds = produce(bench, count)
        deadline = time.monotonic() + 120 + count / 20
        while time.monotonic() < deadline:
            run.delivered, run.failed = progress(bench)
            if run.delivered + run.failed >= count:
                break
            if child.process.poll() is not None:
                run.problems.append(f"{side}: the sender exited with status {child.process.returncode}")
                break
            time.sleep(0.2)
        else:
            run.problems.append(f"{side}: {count - run.delivered - run.failed} deliveries still pending")
        if child.process.poll() is None:
            sampler.sample()
            run.cpu_s = cpu_seconds(child.process.pid) - cpu_before
            run.cpu_ms_per_delivery = run.cpu_s * 1000 / max(1, run.delivered)
        sampler.stop()
        run.hwm_mb, run.threads = sampler.hwm_kb / 1024, sampler.threads
        receivers_cpu = sum(cpu_seconds(r.process.pid) for r in receivers) - receivers_cpu
        if child.process.poll() is None:
            child.say("stop")
            child.message(60)
            child.process.wait(30)
    finally:
        child.stop()
    created, answered, run.attempts = outcomes(bench)
    if created:
        run.seconds = max(answered) - min(created)
        run.rate = len(created) / run.seconds
        delays = [(a - c) * 1000 for c, a in zip(created, answered, strict=True)]
        run.p50_ms, run.p99_ms = percentile(delays, 50), percentile(delays, 99)
    stats = [receiver_get(port, "/stats") for port in bench.ports]
    run.receivers = {
        key: sum(s[key] for s in stats)
        for key in ("requests", "verified", "bad_signatures", "duplicates", "connections", "peak_open")
    } | {
        "lag_p99_ms": max(s["lag_p99_ms"] for s in stats),
        "cpu_s": receivers_cpu,
    }
    if run.failed:
        run.problems.append(f"{side}: {run.failed} deliveries failed")
    if run.receivers["bad_signatures"]:
        run.problems.append(f"{side}: {run.receivers['bad_signatures']:g} signatures did not verify")
    if run.receivers["duplicates"]:
        run.problems.append(f"{side}: receivers saw {run.receivers['duplicates']:g} deliveries twice")
    return run


# -- the whole bench -----------------------------------------------------------------------------


@contextmanager
def setup(pg_url: str, endpoints: int, receivers: int, delay_ms: str, tmp: str) -> Any:
    from logistics_shared.cli import make_app
    from logistics_shared.migrations import upgrade
    from logistics_shared.service import discover
    from logistics_shared.settings import load_settings
    from logistics_shared.webhooks.signing import new_secret

    name = f"whbench_{os.getpid()}"
    spec = discover()[SERVICE]
    with ExitStack() as stack:
        url = stack.enter_context(database("postgres", name, pg_url))
        config = settings_ini(url, tmp)
        upgrade(spec, load_settings(SERVICE, config, environ={}))
        # This process commits the bursts and polls: two connections are plenty.
        settings = load_settings(SERVICE, {**config, "db_pool_size": "2", "db_max_overflow": "0"}, environ={})
        registry = make_app(spec, settings, web=False).registry
        engine = registry["dbengine"]
        stack.callback(engine.dispose)
        secrets = [new_secret() for _ in range(endpoints)]
        secrets_file = Path(tmp) / "secrets.json"
        ports: list[int] = []
        children: list[Child] = []
        for r in range(receivers):
            mine = {str(n): secrets[n] for n in range(r, endpoints, receivers)}
            secrets_file.write_text(json.dumps(mine))
            child = Child(
                f"receiver {r}",
                [
                    sys.executable,
                    str(KIT / "webhook_receiver.py"),
                    f"--secrets={secrets_file}",
                    f"--delay-ms={delay_ms}",
                ],
            )
            stack.callback(child.stop)
            ports.append(int(child.message(30)["port"]))
            children.append(child)
        secrets_file.unlink()
        urls = [(f"http://127.0.0.1:{ports[n % receivers]}/e/{n}", secrets[n]) for n in range(endpoints)]
        tables = registry["logistics.platform_tables"].webhooks
        factory = registry["dbsession_factory"]
        ids = create_endpoints(registry["logistics.secretbox"], factory, tables, urls)
        config_file = Path(tmp) / "settings.json"
        config_file.write_text(json.dumps(config))
        yield Bench(config, config_file, tables, factory, engine, ids, ports), children


def _spread(values: list[float], fmt: str = ".0f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def render(runs: dict[str, list[Run]], facts: list[tuple[str, str]], load_after: str) -> str:
    a, b = runs["asyncio"], runs["threads"]
    head = (
        f"{'sender':<36} {'deliveries':>10} {'deliveries/s':>20} {'p50 delay ms':>20} {'p99 delay ms':>20}"
        f" {'peak RSS MB':>18} {'RSS ready':>9} {'threads':>7} {'CPU ms/dlv':>10}"
    )
    out = [
        "Webhook delivery: the asyncio dispatcher vs a requests + ThreadPoolExecutor baseline",
        *fact_lines([*facts, ("load after", load_after)], 18),
        "",
        head,
        "-" * len(head),
    ]
    for side, side_runs in runs.items():
        out.append(
            f"{SIDES[side]:<36} {side_runs[0].count:>10} {_spread([r.rate for r in side_runs]):>20}"
            f" {_spread([r.p50_ms for r in side_runs]):>20} {_spread([r.p99_ms for r in side_runs]):>20}"
            f" {_spread([r.hwm_mb for r in side_runs], '.1f'):>18}"
            f" {statistics.median(r.ready_rss_mb for r in side_runs):>9.1f}"
            f" {max(r.threads for r in side_runs):>7}"
            f" {statistics.median(r.cpu_ms_per_delivery for r in side_runs):>10.2f}"
        )
    ratios = [x.rate / y.rate for x, y in zip(a, b, strict=True)]
    memory = [y.hwm_mb / x.hwm_mb for x, y in zip(a, b, strict=True)]
    cpu = [
        y.cpu_ms_per_delivery / x.cpu_ms_per_delivery
        for x, y in zip(a, b, strict=True)
        if x.cpu_ms_per_delivery
    ]
    rate_met = statistics.median(ratios) >= GOAL
    memory_met = statistics.median(memory) >= 1.0
    out += [
        "",
        f"(A)/(B) deliveries/s, per round: {_spread(ratios, '.1f')}  goal >= {GOAL:g}: "
        + ("met" if rate_met else "NOT met"),
        f"(B)/(A) peak RSS, per round:     {_spread(memory, '.2f')}  goal >= 1 (no more memory): "
        + ("met" if memory_met else "NOT met"),
        f"(B)/(A) sender CPU per delivery: {_spread(cpu or [float('nan')], '.1f')}  (less moved by the"
        " machine's load than a rate)",
        "",
        "per run (in the order they ran):",
    ]
    ordered = sorted((r for side_runs in runs.values() for r in side_runs), key=lambda r: r.order)
    for r in ordered:
        rec = r.receivers
        share = 100 * r.cpu_s / r.seconds if r.seconds else 0.0
        attempts = ", ".join(f"{k} {v}" for k, v in sorted(r.attempts.items()))
        out += [
            f"  round {r.round} {r.side}: {r.delivered}/{r.count} delivered in {r.seconds:.1f} s"
            f" ({r.rate:.0f}/s), the burst committed in {r.insert_seconds:.1f} s; attempts: {attempts}",
            f"      sender {r.cpu_s:.1f} CPU s ({share:.0f}% of a core); receivers"
            f" {rec['requests']:g} requests on {rec['connections']:g} connections,"
            f" at most {rec['peak_open']:g} waiting at once,",
            f"      {rec['verified']:g} signatures verified, {rec['bad_signatures']:g} bad,"
            f" {rec['duplicates']:g} repeated; their wake-up lag p99 {rec['lag_p99_ms']:.0f} ms,"
            f" {rec['cpu_s']:.1f} CPU s",
        ]
    if b and a and b[0].count != a[0].count:
        out.append(
            f"  note: (B) sent {b[0].count} deliveries, (A) {a[0].count}: the delays of a burst grow with its"
            " size, so the p50/p99 columns compare the senders' queues, not like with like"
        )
    problems = [p for side_runs in runs.values() for r in side_runs for p in r.problems]
    out += [f"PROBLEM: {p}" for p in problems]
    results.emit(
        "webhooks",
        "(A) asyncio / (B) thread pool, deliveries/s",
        statistics.median(ratios),
        "ratio",
        low=min(ratios),
        high=max(ratios),
        goal=GOAL,
        asyncio_rate=statistics.median(r.rate for r in a),
        threads_rate=statistics.median(r.rate for r in b),
    )
    results.emit(
        "webhooks",
        "(B) / (A) peak RSS",
        statistics.median(memory),
        "ratio",
        low=min(memory),
        high=max(memory),
        goal=1.0,
        asyncio_mb=statistics.median(r.hwm_mb for r in a),
        threads_mb=statistics.median(r.hwm_mb for r in b),
    )
    if cpu:
        results.emit(
            "webhooks",
            "(B) / (A) sender CPU per delivery",
            statistics.median(cpu),
            "ratio",
            low=min(cpu),
            high=max(cpu),
            asyncio_cpu_ms=statistics.median(r.cpu_ms_per_delivery for r in a),
            threads_cpu_ms=statistics.median(r.cpu_ms_per_delivery for r in b),
        )
    for side, side_runs in runs.items():
        rates = [r.rate for r in side_runs]
        results.emit(
            "webhooks",
            f"{SIDES[side]} deliveries/s",
            statistics.median(rates),
            "deliveries/s",
            low=min(rates),
            high=max(rates),
            deliveries=side_runs[0].count,
            p50_ms=statistics.median(r.p50_ms for r in side_runs),
            p99_ms=statistics.median(r.p99_ms for r in side_runs),
            peak_rss_mb=statistics.median(r.hwm_mb for r in side_runs),
            threads=max(r.threads for r in side_runs),
        )
    return "\n".join(out)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> tuple[str, bool]:
    facts = [
        *machine(),
        ("software", software(libraries("aiohttp", "requests", "standardwebhooks", "SQLAlchemy", "psycopg"))),
        ("database", postgres_facts(args.pg_url)),
        (
            "load",
            f"{args.deliveries} deliveries for (A), {args.baseline_deliveries} for (B) (its rate is ~100/s),"
            f" {args.endpoints} endpoints",
        ),
        (
            "receivers",
            f"{args.receivers} aiohttp processes on 127.0.0.1 (a port each), answer 200 after"
            f" uniform {args.delay_ms.replace(',', '-')} ms; 1 in 20 signatures verified (standardwebhooks)",
        ),
        (
            "(A) settings",
            "defaults (5 s connect, 15 s read, 4 per endpoint, 2000 in flight) but"
            " webhook_allow_networks=127.0.0.0/8,::1/128, webhook_allow_http=true",
        ),
        ("(B) settings", f"the same; ThreadPoolExecutor({args.threads}), {2 * args.threads} claimed ahead"),
        ("rounds", f"{args.rounds}, A/B interleaved (order alternates)"),
    ]
    runs: dict[str, list[Run]] = {"asyncio": [], "threads": []}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="whbench-"))
        bench, receivers = stack.enter_context(
            setup(args.pg_url, args.endpoints, args.receivers, args.delay_ms, tmp)
        )
        order = 0
        for round_ in range(1, args.rounds + 1):
            for side in ("asyncio", "threads") if round_ % 2 else ("threads", "asyncio"):
                count = args.deliveries if side == "asyncio" else args.baseline_deliveries
                say(f"round {round_}: {SIDES[side]}, {count} deliveries (load {load_average()})")
                order += 1
                result = one_run(bench, side, count, args.threads, receivers, round_, order)
                runs[side].append(result)
                say(f"   {result.rate:.0f} deliveries/s, p99 {result.p99_ms:.0f} ms")
    failed = any(r.problems for side_runs in runs.values() for r in side_runs)
    return render(runs, facts, load_average()), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=None, help="(A)'s deliveries per run (20000)")
    parser.add_argument(
        "--baseline-deliveries", type=int, default=None, help="(B)'s deliveries per run (3000)"
    )
    parser.add_argument("--endpoints", type=int, default=None, help="endpoints (500)")
    parser.add_argument("--rounds", type=int, default=None, help="A/B rounds (3)")
    parser.add_argument("--threads", type=int, default=32, help="(B)'s pool threads")
    parser.add_argument("--receivers", type=int, default=2, help="receiver processes (one port each)")
    parser.add_argument("--delay-ms", default="100,500", help="receivers' uniform answer delay, min,max")
    parser.add_argument("--pg-url", default=core.PG_URL)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2000/300 deliveries, 100 endpoints, 1 round: the machinery, not figures",
    )
    args = parser.parse_args()
    defaults = (2000, 300, 100, 1) if args.quick else (20000, 3000, 500, 3)
    for name, default in zip(
        ("deliveries", "baseline_deliveries", "endpoints", "rounds"), defaults, strict=True
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(args.deliveries, args.baseline_deliveries, args.endpoints, args.rounds, args.receivers) < 1:
        parser.error("counts must be at least 1")
    return core.stoppable_main(lambda _stop: run(args))


if __name__ == "__main__":
    sys.exit(main())

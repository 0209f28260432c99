"""Our bus pipeline against raw kombu on the same broker, in one run.

    .venv/bin/python bench/bus.py [--messages 5000] [--rate 200] [--latency-seconds 10]
                                  [--batch 500] [--pg-url postgresql://postgres@127.0.0.1:5432]
                                  [--broker-url amqp://guest:guest@127.0.0.1:5672//]

Rows, in the order they run:

(a) raw kombu, one confirm per message: ``Connection(url, transport_options={"confirm_publish":
    True})``, ``Producer.publish`` persistent to a durable queue (default exchange).
(b) raw kombu without confirms, same queue and body; timed until the broker reports all N
    messages in the queue (the publish loop alone only measures the socket buffer).
(c) our pipeline, with the shipping service as producer (its outbox, its exchange) and an
    inventory-database ``EventConsumer`` with one trivial handler on ``shipment.cancelled``
    (inbox row, nothing else), both built from each service's own ``configure()`` and default
    settings; the relay is the one ``Worker`` runs. Three phases:
    c1 relay only: N events committed up front (``--batch`` rows per transaction through
       ``Outbox.emit``), then the relay starts and drains them: first claim -> last batch
       committed as published. The consumer is not running; the messages queue up.
    c2 consumer only: the consumer starts on those N queued messages: first delivery ->
       last handler commit.
    c3 full pipeline: relay and consumer running and idle; a separate producer process
       commits N fresh events (``--batch`` rows per transaction) while they run:
       first outbox insert -> last handler commit. **This is the pipeline row.**
(d) end-to-end latency at a steady ``--rate`` for ``--latency-seconds``: a separate producer
    process commits each event in its own transaction, like an API request; latency = handler
    commit - the moment just before the producer's INSERT (``time.monotonic``, which is one
    system-wide clock on Linux, so it compares across processes).

The relay and the consumer run as threads of this process, as ``Worker`` runs them in
production; producers run in a child process, as web processes would. Nothing asserts; the
ratios are the result. Databases (``bench_bus_shipping``, ``bench_bus_inventory``) and every
queue and exchange of the run's namespace are deleted at the end, also on Ctrl-C or SIGTERM.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import logging
import multiprocessing
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
from kit import results
from kit.broker import broker, broker_version, delete_namespace
from kit.core import BROKER_URL, PG_URL
from kit.cpu import SelfCpuMeter
from kit.databases import make_settings, migrated_databases, postgres_facts
from kit.facts import libraries, machine, software
from kit.facts import lines as fact_lines
from kit.stats import percentile
from kombu import Connection, Queue
from sqlalchemy import event, text

from logistics_shared.bus import publisher as publisher_module
from logistics_shared.bus.connection import connection_factory
from logistics_shared.bus.consumer import EventConsumer
from logistics_shared.bus.handlers import Handler
from logistics_shared.bus.names import Names
from logistics_shared.bus.topology import declare_consumer
from logistics_shared.bus.worker import Worker
from logistics_shared.db import make_engine, session_factory
from logistics_shared.outbox import Outbox
from logistics_shared.service import discover
from logistics_shared.settings import Settings

DB_PREFIX = "bench_bus"
EVENT = "shipment.cancelled"
HANDLER = "bench_noop"
RAW_WARMUP = 200


# -- events --------------------------------------------------------------------------------------


def event_data(n: int) -> dict[str, Any]:
    return {"shipment_id": str(uuid.uuid4()), "reference": f"BENCH-{n}", "warehouse": "BENCH", "reason": None}


def sample_body() -> bytes:
    """A real ``shipment.cancelled`` envelope, so the raw rows carry the same bytes as ours."""
    from logistics_shared.events import new_envelope

    return orjson.dumps(new_envelope(EVENT, event_data(0), producer="shipping").to_dict())


# -- the producer (a child process in c3 and d) ----------------------------------------------------


def produce(settings: Settings, mode: str, count: int, batch: int, rate: float) -> dict[str, Any]:
    """Commit ``count`` events to the shipping outbox.

    ``burst``: ``batch`` events per transaction, as fast as possible. ``paced``: one event per
    transaction on a fixed schedule of ``rate`` per second (open loop: a late event does not
    delay the schedule). Returns monotonic timestamps; for ``paced`` the insert time per event id.
    """
    spec = discover()["shipping"]
    table = spec.metadata().tables["outbox"]
    engine = make_engine(settings)
    factory = session_factory(engine)
    with engine.connect() as conn:  # connect before the clock starts
        conn.execute(text("SELECT 1"))
    inserted: dict[str, float] = {}
    try:
        first = time.monotonic()
        if mode == "burst":
            done = 0
            while done < count:
                size = min(batch, count - done)
                with factory() as session, session.begin():
                    outbox = Outbox(session, table, producer="shipping")
                    for i in range(done, done + size):
                        outbox.emit(EVENT, event_data(i))
                done += size
        else:
            for i in range(count):
                delay = first + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                at = time.monotonic()
                with factory() as session, session.begin():
                    envelope = Outbox(session, table, producer="shipping").emit(EVENT, event_data(i))
                inserted[str(envelope.id)] = at
        last = time.monotonic()
    finally:
        engine.dispose()
    return {"first": first, "last": last, "inserted": inserted}


def _produce_child(conn: Any, settings: Settings, mode: str, count: int, batch: int, rate: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop us
    try:
        conn.send(("ok", produce(settings, mode, count, batch, rate)))
    except BaseException as exc:
        conn.send(("error", f"{exc.__class__.__name__}: {exc}"))
    finally:
        conn.close()


class Producer:
    """``produce`` in a spawned process (threads in this one must not be forked)."""

    def __init__(self, settings: Settings, mode: str, count: int, batch: int, rate: float = 0.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.receiver, sender = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_produce_child, args=(sender, settings, mode, count, batch, rate), daemon=True
        )
        self.process.start()
        sender.close()

    def result(self, timeout: float) -> dict[str, Any]:
        if not self.receiver.poll(timeout):
            raise SystemExit(f"the producer process gave no result in {timeout:.0f}s")
        status, value = self.receiver.recv()
        self.process.join(10)
        if status != "ok":
            raise SystemExit(f"the producer process failed: {value}")
        return value

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(10)
        self.receiver.close()


# -- instrumentation (timestamps and time split; the bus code itself is untouched) ----------------


@dataclass
class Probe:
    """What the relay and the consumer did during one phase."""

    relay_calls: int = 0
    relay_empty: int = 0
    relay_rows: int = 0
    relay_seconds: float = 0.0
    relay_first: float | None = None
    relay_last_busy_end: float | None = None
    publish_calls: int = 0
    publish_seconds: float = 0.0
    handled: int = 0
    handle_first: float | None = None
    handle_seconds: float = 0.0
    apply_seconds: float = 0.0
    commits: dict[str, float] = field(default_factory=dict)


class Instruments:
    def __init__(self) -> None:
        self.probe = Probe()
        self._original_publish = publisher_module.ConfirmingPublisher.publish

    def reset(self) -> Probe:
        self.probe = Probe()
        return self.probe

    def install_relay(self, relay: Any) -> None:
        inner = relay.relay_once

        def relay_once(publisher: Any) -> int:
            start = time.monotonic()
            claimed = inner(publisher)
            end = time.monotonic()
            probe = self.probe
            probe.relay_calls += 1
            probe.relay_seconds += end - start
            if claimed:
                probe.relay_rows += claimed
                probe.relay_last_busy_end = end
                if probe.relay_first is None:
                    probe.relay_first = start
            else:
                probe.relay_empty += 1
            return claimed

        relay.relay_once = relay_once
        original = self._original_publish

        def publish(publisher: Any, batch: list[Any]) -> Any:
            start = time.monotonic()
            try:
                return original(publisher, batch)
            finally:
                self.probe.publish_calls += 1
                self.probe.publish_seconds += time.monotonic() - start

        publisher_module.ConfirmingPublisher.publish = publish  # type: ignore[method-assign]

    def install_consumer(self, consumer: EventConsumer) -> None:
        handle_batch, apply, apply_many = consumer.handle_batch, consumer.apply, consumer.apply_many

        def timed_handle_batch(handler: Handler, messages: list[Any]) -> None:
            start = time.monotonic()
            if self.probe.handle_first is None:
                self.probe.handle_first = start
            try:
                handle_batch(handler, messages)
            finally:
                self.probe.handled += len(messages)
                self.probe.handle_seconds += time.monotonic() - start

        def timed_apply(handler: Handler, envelope: dict[str, Any]) -> bool:
            start = time.monotonic()
            try:
                return apply(handler, envelope)
            finally:
                self.probe.apply_seconds += time.monotonic() - start

        def timed_apply_many(handler: Handler, envelopes: list[dict[str, Any]]) -> int:
            start = time.monotonic()
            try:
                return apply_many(handler, envelopes)
            finally:
                self.probe.apply_seconds += time.monotonic() - start

        # The consumer applies what is buffered in one transaction (apply_many),
        # a lone message or a failed batch one at a time (apply).
        consumer.handle_batch = timed_handle_batch  # type: ignore[method-assign]
        consumer.apply = timed_apply  # type: ignore[method-assign]
        consumer.apply_many = timed_apply_many  # type: ignore[method-assign]

        # Handler commit time: the handler tags its session, the sessionmaker's after_commit
        # stamps it (the commit is the consumer's, after the handler returns).
        def on_commit(session: Any) -> None:
            ids = session.info.pop("bench.ids", None)
            if ids:
                now = time.monotonic()
                for event_id in ids:
                    self.probe.commits[event_id] = now

        event.listen(consumer.session_factory, "after_commit", on_commit)

    def uninstall(self) -> None:
        publisher_module.ConfirmingPublisher.publish = self._original_publish  # type: ignore[method-assign]


def noop_handler(session: Any, envelope: dict[str, Any], _outbox: Outbox) -> None:
    session.info.setdefault("bench.ids", []).append(str(envelope["id"]))


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    count: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Latency:
    target_rate: float
    achieved_rate: float
    count: int
    missing: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


# -- raw kombu -----------------------------------------------------------------------------------------


def queue_depth(conn: Connection, name: str) -> int:
    _, depth, _ = conn.default_channel.queue_declare(queue=name, passive=True)
    return depth


def wait_depth(conn: Connection, name: str, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while queue_depth(conn, name) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"queue {name} never reached {count} messages")
        time.sleep(0.002)


def raw_publish(broker_url: str, queue_name: str, body: bytes, count: int, *, confirm: bool) -> Row:
    with broker(broker_url, transport_options={"confirm_publish": confirm}) as conn:
        Queue(queue_name, durable=True)(conn.default_channel).declare()
        producer = conn.Producer()

        def burst(n: int) -> None:
            for _ in range(n):
                producer.publish(
                    body,
                    exchange="",
                    routing_key=queue_name,
                    delivery_mode=2,
                    content_type="application/json",
                    content_encoding="utf-8",
                    retry=False,
                )

        conn.default_channel.queue_purge(queue_name)
        burst(RAW_WARMUP)
        wait_depth(conn, queue_name, RAW_WARMUP)
        conn.default_channel.queue_purge(queue_name)
        start = time.monotonic()
        burst(count)
        loop = time.monotonic() - start
        wait_depth(conn, queue_name, count)  # immediate with confirms: each one was acked
        elapsed = time.monotonic() - start
        conn.default_channel.queue_purge(queue_name)
    if confirm:
        return Row("(a) raw kombu, confirm per message", count, elapsed, "persistent, durable queue")
    return Row(
        "(b) raw kombu, no confirms",
        count,
        elapsed,
        f"until all queued; publish loop alone {count / loop:,.0f}/s",
    )


# -- our pipeline ----------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


@dataclass
class Pipeline:
    rows: dict[str, Row] = field(default_factory=dict)
    diagnostics: list[str] = field(default_factory=list)
    latency: Latency | None = None


def describe(phase: str, probe: Probe, wall: float, cpu: str) -> str:
    relay = (
        f"relay: {probe.relay_calls} claims ({probe.relay_empty} empty), "
        f"{probe.relay_rows / max(1, probe.relay_calls - probe.relay_empty):.1f} rows per non-empty claim, "
        f"busy {probe.relay_seconds:.2f}s of which publish+confirm {probe.publish_seconds:.2f}s "
        f"in {probe.publish_calls} batches"
    )
    consumer = (
        f"consumer: {probe.handled} messages, in handle() {probe.handle_seconds:.2f}s "
        f"({probe.handle_seconds / wall * 100 if wall else 0:.0f}% of the phase), of which the DB "
        f"transaction (inbox insert + commit) {probe.apply_seconds:.2f}s; "
        f"{probe.handle_seconds / probe.handled * 1000 if probe.handled else 0:.2f} ms/message"
    )
    return f"{phase} ({wall:.2f}s)\n      {relay}\n      {consumer}\n      {cpu}"


def unpublished(engine: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")).scalar_one()


def measure_pipeline(
    args: argparse.Namespace, settings: dict[str, Settings], instruments: Instruments
) -> Pipeline:
    specs = discover()
    result = Pipeline()
    ship = settings["shipping"]
    inv = settings["inventory"]
    ship_registry = specs["shipping"].configure(ship).make_wsgi_app().registry
    inv_registry = specs["inventory"].configure(inv).make_wsgi_app().registry
    ship_engine = ship_registry["dbengine"]
    handler = Handler(HANDLER, producer="shipping", events=(EVENT,), func=noop_handler)
    consumer = EventConsumer(
        service="inventory",
        settings=inv,
        session_factory=inv_registry["dbsession_factory"],
        platform=inv_registry["logistics.platform_tables"],
        handlers=(handler,),
        metrics=inv_registry["logistics.metrics"].bus,
        connect=connection_factory(inv, heartbeat=True),
    )
    instruments.install_consumer(consumer)
    # The relay exactly as the shipping worker runs it (no consumers: shipping has no handlers).
    worker = Worker(specs["shipping"], ship, ship_registry, relay=True, consumers=0, periodic=False)
    if worker.relay is None:
        raise SystemExit("Worker built no relay")
    instruments.install_relay(worker.relay)
    stop_consumer = threading.Event()
    consumer_thread = threading.Thread(target=consumer.run, args=(stop_consumer,), daemon=True)
    producer: Producer | None = None
    n = args.messages
    try:
        # The consumer's queue exists and is bound before anything is published.
        with broker(inv.broker_url) as conn:
            declare_consumer(
                conn.default_channel,
                Names(inv.bus_namespace),
                "inventory",
                (handler,),
                inv.retry_delays,
                with_delay_queues=True,
            )

        # c1: N rows up front, then the relay alone.
        start = time.monotonic()
        produce(ship, "burst", n, args.batch, 0.0)
        result.rows["inserts"] = Row(
            f"    outbox inserts alone, {args.batch} rows/txn", n, time.monotonic() - start, "before c1"
        )
        probe = instruments.reset()
        cpu = SelfCpuMeter("relay+consumer process")
        worker.start()
        wait_for(lambda: unpublished(ship_engine) == 0, 300, "the relay to drain the outbox", 0.05)
        if probe.relay_first is None or probe.relay_last_busy_end is None:
            raise SystemExit("the relay drained the outbox without claiming a row?")
        wall = probe.relay_last_busy_end - probe.relay_first
        result.rows["c1"] = Row(
            "(c1) relay only: outbox -> confirmed + marked", n, wall, "backlog of N, no consumer"
        )
        result.diagnostics.append(describe("c1 relay only", probe, wall, cpu.read()))

        # c2: the consumer alone on the N queued messages.
        probe = instruments.reset()
        cpu = SelfCpuMeter("relay+consumer process")
        consumer_thread.start()
        wait_for(lambda: len(probe.commits) >= n, 600, "the consumer to drain the queue")
        if probe.handle_first is None:
            raise SystemExit("the consumer committed without handling a message?")
        wall = max(probe.commits.values()) - probe.handle_first
        result.rows["c2"] = Row("(c2) consumer only: queue -> handler commit", n, wall, "backlog of N")
        result.diagnostics.append(describe("c2 consumer only", probe, wall, cpu.read()))

        # c3: the full pipeline, the producer committing while relay and consumer run.
        time.sleep(1.0)  # let the relay go idle on LISTEN
        probe = instruments.reset()
        cpu = SelfCpuMeter("relay+consumer process")
        producer = Producer(ship, "burst", n, args.batch)
        produced = producer.result(600)
        producer.stop()
        producer = None
        wait_for(lambda: len(probe.commits) >= n, 600, "the pipeline to deliver every event")
        wall = max(probe.commits.values()) - produced["first"]
        result.rows["c"] = Row(
            "(c) PIPELINE: outbox insert -> handler commit",
            n,
            wall,
            f"inserts concurrent, {args.batch}/txn, separate process",
        )
        result.rows["c_inserts"] = Row(
            "    its producer: first insert -> last commit",
            n,
            produced["last"] - produced["first"],
            "while relay+consumer ran",
        )
        if probe.relay_last_busy_end is not None:
            result.rows["c_relay"] = Row(
                "    its relay: first insert -> last batch marked",
                n,
                probe.relay_last_busy_end - produced["first"],
            )
        result.diagnostics.append(describe("c3 full pipeline", probe, wall, cpu.read()))

        # d: latency at a steady rate, one event per transaction.
        time.sleep(1.0)
        probe = instruments.reset()
        cpu = SelfCpuMeter("relay+consumer process")
        total = max(1, round(args.rate * args.latency_seconds))
        producer = Producer(ship, "paced", total, 1, args.rate)
        produced = producer.result(args.latency_seconds * 3 + 120)
        producer.stop()
        producer = None
        inserted: dict[str, float] = produced["inserted"]
        with suppress(SystemExit):
            wait_for(lambda: all(i in probe.commits for i in inserted), 60, "every paced event")
        latencies = [(probe.commits[i] - at) * 1000 for i, at in inserted.items() if i in probe.commits]
        span = produced["last"] - produced["first"]
        result.latency = Latency(
            target_rate=args.rate,
            achieved_rate=(total - 1) / span if span > 0 else float("nan"),
            count=len(latencies),
            missing=len(inserted) - len(latencies),
            p50_ms=percentile(latencies, 50),
            p90_ms=percentile(latencies, 90),
            p99_ms=percentile(latencies, 99),
            max_ms=max(latencies) if latencies else float("nan"),
        )
        wall = max(probe.commits.values(), default=produced["last"]) - produced["first"]
        result.diagnostics.append(describe("d latency run", probe, wall, cpu.read()))
        if latencies:
            mean = statistics.fmean(latencies)
            result.diagnostics.append(f"      latency mean {mean:.2f} ms over {len(latencies)} events")
    finally:
        if producer is not None:
            producer.stop()
        stop_consumer.set()
        worker.shutdown(timeout=10)
        if consumer_thread.ident is not None:
            consumer_thread.join(10)
        instruments.uninstall()
        for registry in (ship_registry, inv_registry):
            registry["dbengine"].dispose()
    return result


# -- machine facts, output ------------------------------------------------------------------------


def machine_facts(args: argparse.Namespace, settings: Settings) -> list[tuple[str, str]]:
    return [
        *machine(),
        ("broker", broker_version(args.broker_url)),
        ("database", postgres_facts(args.pg_url)),
        ("software", software(libraries("kombu", "amqp", "psycopg", "SQLAlchemy"))),
        (
            "our settings",
            f"outbox_batch_size={settings.outbox_batch_size} · bus_prefetch={settings.bus_prefetch} · "
            f"outbox_poll_seconds={settings.outbox_poll_seconds} · consumers=1 (defaults)",
        ),
        ("messages", f"{args.messages} per throughput row · body {len(sample_body())} bytes"),
    ]


def render(a: Row, b: Row, pipeline: Pipeline, facts: list[tuple[str, str]]) -> str:
    found = pipeline.rows
    c, c1, c2 = found["c"], found["c1"], found["c2"]
    order = ("c", "c_inserts", "c_relay", "c1", "c2", "inserts")
    rows = [a, b, *(found[key] for key in order if key in found)]
    lines = ["", "Bus benchmark: our outbox -> relay -> consumer pipeline against raw kombu, same broker", ""]
    lines += fact_lines(facts, 13)
    header = f"{'measurement':<52} {'count':>6} {'seconds':>8} {'msg/s':>9} {'vs (a)':>7} {'vs (b)':>7}  note"
    lines += ["", header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.label:<52} {row.count:>6} {row.seconds:>8.3f} {row.rate:>9,.0f} "
            f"{row.rate / a.rate:>7.2f} {row.rate / b.rate:>7.2f}  {row.note}"
        )
    lat = pipeline.latency
    if lat is not None:
        lines += [
            "",
            f"(d) end-to-end latency, outbox insert -> handler commit, one event per transaction, "
            f"target {lat.target_rate:g}/s, achieved {lat.achieved_rate:.1f}/s:",
            f"    events {lat.count} (missing {lat.missing})   p50 {lat.p50_ms:.2f} ms   "
            f"p90 {lat.p90_ms:.2f} ms   p99 {lat.p99_ms:.2f} ms   max {lat.max_ms:.2f} ms",
        ]
    lines += [
        "",
        "Ratios:",
        f"  pipeline (c) / raw confirm-per-message (a)   {c.rate / a.rate:6.2f}   (the aim: >= 3)",
        f"  pipeline (c) / raw no-confirm (b)            {c.rate / b.rate:6.2f}",
        f"  relay only (c1) / raw confirm (a)            {c1.rate / a.rate:6.2f}",
        f"  consumer only (c2) / raw confirm (a)         {c2.rate / a.rate:6.2f}",
        f"  raw confirm (a) / raw no-confirm (b)         {a.rate / b.rate:6.2f}",
        "",
        "Where the time went (instrumented in-process; the bus code is unchanged):",
    ]
    lines += [f"  {d}" for d in pipeline.diagnostics]
    lines.append("")
    for row in rows:
        results.emit("bus", row.label, row.rate, "msg/s", count=row.count)
    results.emit("bus", "pipeline / raw kombu with confirms", c.rate / a.rate, "ratio", goal=3.0)
    if lat is not None:
        results.emit("bus", f"latency p50 at {lat.target_rate:g}/s", lat.p50_ms, "ms", goal=10.0)
        results.emit("bus", f"latency p99 at {lat.target_rate:g}/s", lat.p99_ms, "ms", goal=50.0)
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--messages", type=int, default=5000, help="messages per throughput row; default 5000"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="events/s for the latency run; default 200")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="latency run length; default 10")
    parser.add_argument(
        "--batch", type=int, default=500, help="outbox rows per producer transaction; default 500"
    )
    parser.add_argument(
        "--db-prefix",
        default=DB_PREFIX,
        help=f"names of the run's databases, <prefix>_<service>; default {DB_PREFIX}",
    )
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server; default {PG_URL}")
    parser.add_argument("--broker-url", default=BROKER_URL, help=f"RabbitMQ; default {BROKER_URL}")
    args = parser.parse_args()
    if min(args.messages, args.rate, args.latency_seconds, args.batch) <= 0:
        parser.error("--messages, --rate, --latency-seconds and --batch must be positive")
    return args


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C: threads stopped, databases dropped, queues deleted.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    namespace = f"benchbus{uuid.uuid4().hex[:8]}"
    raw_queue = f"{namespace}.raw"
    instruments = Instruments()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-bus-") as migrate_dir,
            migrated_databases(
                args.pg_url,
                {name: f"{args.db_prefix}_{name}" for name in ("shipping", "inventory")},
                args.broker_url,
                migrate_dir,
            ) as urls,
            tempfile.TemporaryDirectory(prefix="bench-bus-") as var_dir,
        ):
            settings = {
                name: make_settings(name, url, args.broker_url, namespace, var_dir)
                for name, url in urls.items()
            }
            facts = machine_facts(args, settings["shipping"])
            try:
                body = sample_body()
                raw_confirm = raw_publish(args.broker_url, raw_queue, body, args.messages, confirm=True)
                raw_plain = raw_publish(args.broker_url, raw_queue, body, args.messages, confirm=False)
                pipeline = measure_pipeline(args, settings, instruments)
            finally:
                delete_namespace(args.broker_url, namespace, [raw_queue])
    except KeyboardInterrupt:
        print("\ninterrupted: threads stopped, bench databases dropped, queues deleted", file=sys.stderr)
        return 130
    print(render(raw_confirm, raw_plain, pipeline, facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The support service: ticket list/search on 10,000 tickets, and the shipment projection's lag.

    .venv/bin/python bench/tickets.py [--threads 4] [--duration 10] [--connections 16] [--warmup 2]
                                      [--tickets 10000] [--rate 20] [--seconds 20] [--poll-ms 5]
                                      [--clients 4] [--web-threads 8] [--settle 30]
                                      [--pg-url ...] [--broker-url ...]

One run on one machine, against the machine's PostgreSQL and RabbitMQ:

* two fresh databases, ``bench_support`` and ``bench_support_shipping`` (dropped first if they
  exist), migrated with ``logistics migrate support|shipping``, and a fresh bus namespace
  ``benchsupport<hex>``;
* ``--tickets`` tickets (default 10,000) with comments, inserted in one process with SQLAlchemy
  Core through support's own table definitions (``support.models``) and SLA policy
  (``support.domain.sla.due_times``): over the HTTP API 10,000 tickets would take minutes.

Part 1, list and search throughput: the bare endpoint (bench/bare_app.py), then
``logistics serve support --threads <same>`` under the same wrk load as bench/http.py (its wrk
code, its defaults, a discarded warm-up before each row), one row per query of
``GET /v1/tickets``: the first page, a status+priority filter, a text search matching a few
percent of the tickets, a text search matching none, "my open tickets" (``assignee=me``, the
token's subject is one of the seeded assignees) and one page far into the list (a cursor made
the way the service makes its own). Each URL is smoke-tested first: 200, and exactly the page
the seeded data says it must be. The ratio to the bare endpoint is the result.

Part 2, the projection's lag: ``logistics worker support`` consumes shipping's events into its
read model (``shipment_view``). ``logistics serve shipping`` and ``logistics worker shipping``
(its relay) produce them: one ``POST /v1/shipments`` every 1/``--rate`` s for ``--seconds``
(bench/saga.py's driver, open loop). Without inventory the shipments stay ``awaiting_stock``,
but each commits one ``shipment.requested`` outbox row, which support folds into its view.
A poller thread reads ``shipment_view`` directly over SQL every ``--poll-ms``. Lag is measured
from the shipping outbox row's ``created_at`` (taken in the web process just before the INSERT,
so a little before the commit) to:

  observed  the first poll that saw the row in ``shipment_view`` (after the query returned);
  stamped   support's inbox ``processed_at`` for the ``shipment_view`` handler (taken in the
            consumer before its batch commits);

and split into relay (outbox ``published_at``: after the broker's confirm, before the relay's
commit) and consumer (``processed_at - published_at``). All timestamps are this machine's wall
clock, read by four processes.

Nothing asserts on speed. Exits 1 when a wrk row saw non-2xx responses or socket errors, or a
shipment never became visible. Every subprocess is stopped, both databases dropped and every
queue and exchange of the namespace deleted at the end, also on errors, Ctrl-C or SIGTERM
(exit status 130). Deleting the queues needs ``rabbitmqctl`` on the ``PATH``.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
import urllib.parse
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from kit import core
from kit.broker import broker_version, safely_delete_namespace
from kit.core import BROKER_URL, PG_URL, Server, stoppable_main
from kit.cpu import CpuMeter
from kit.databases import databases, make_settings
from kit.facts import lines as fact_lines
from kit.shipments import Driver, Poller, Sent, wait_seen
from kit.stats import distribution, ms
from kit.wrk import (
    Wrk,
    WrkResult,
    WrkSettings,
    cells,
    ensure_wrk,
    failures,
    header,
    machine_facts,
    measure_bare,
)
from sqlalchemy import text
from sqlalchemy.orm import Session

from logistics_shared.db import aware, make_engine
from logistics_shared.schemas import encode_cursor
from support.domain import sla
from support.models import PRIORITIES, ticket_comments, tickets

DATABASES = {"support": "bench_support", "shipping": "bench_support_shipping"}
PAGE = 50  # the list endpoints' default limit (PageQuerySchema)
SMOKE_TIMEOUT = 30.0
WARMUP_SHIPMENTS = 10


# -- the seeded tickets ----------------------------------------------------------------------------

AGENTS = tuple(f"agent-{n:02d}" for n in range(1, 9))
#: The token's subject: "assignee=me" becomes ``support_agent:<ME>`` in the service.
ME = AGENTS[0]
#: Searched for: in one subject of ``SUBJECTS`` (1 in 30) and in ``HIT_COMMENT`` (1 comment in 200).
HIT_WORD = "customs"
HIT_COMMENT = "The carrier says the parcel is held at customs."
#: Searched for: in no subject, description or comment.
MISS_WORD = "xylophone"
SUBJECTS = (
    "Where is my parcel?",
    "Parcel arrived damaged",
    "Wrong item delivered",
    "Item missing from the box",
    "Please change the delivery address",
    "Refund not received yet",
    "Copy of the invoice, please",
    "I need a return label",
    "Delivery is late",
    "Tracking has not updated for days",
    "Cancel my order",
    "Charged twice for one order",
    "Parcel left with a neighbour I do not know",
    "The courier did not ring",
    "Pallet refused at the dock",
    "Label printer offline in the warehouse",
    "Stock count does not match the system",
    "Customs paperwork missing for export",
    "Delivery slot change",
    "Box too small for the item",
    "Collection did not happen",
    "Address validation fails at checkout",
    "Signature required but nobody home",
    "Package marked delivered but not received",
    "Discount code not applied",
    "Exchange for another size",
    "Partial delivery, rest missing",
    "Wrong carrier service chosen",
    "Need a proof of delivery",
    "Fragile sticker missing, glass broken",
)
COMMENTS = (
    "Thanks for reaching out, we are looking into it.",
    "I have asked the carrier for an update.",
    "Could you send us a photo of the packaging?",
    "The warehouse confirmed the parcel left on time.",
    "A replacement is on its way.",
    "Refund issued; it can take 5 working days.",
    "Customer called again, very unhappy.",
    "Waiting for the customer's reply.",
    "Escalated to the warehouse team lead.",
    "Closing as resolved, please reopen if needed.",
    "New label created and sent by e-mail.",
)
DESCRIPTIONS = (
    "The customer wrote in through the web form.",
    "Reported by phone; details in the first comment.",
    "Forwarded by the warehouse.",
    "Opened from a chat conversation.",
)
TAGS = ("vip", "repeat", "b2b", "refund", "carrier", "damage", "address", "returns", "escalated")
QUEUES = {"general": 35, "shipments": 30, "billing": 15, "returns": 12, "warehouse": 8}
PRIORITY_WEIGHTS = {"low": 20, "normal": 50, "high": 22, "urgent": 8}
TYPE_WEIGHTS = {"question": 45, "incident": 30, "problem": 10, "task": 15}
#: Status weights by the ticket's age: recent tickets are still being worked on, old ones closed.
STATUS_BY_AGE = (
    (timedelta(days=2), {"new": 35, "open": 45, "pending": 15, "solved": 5, "closed": 0}),
    (timedelta(days=14), {"new": 5, "open": 35, "pending": 20, "solved": 30, "closed": 10}),
    (timedelta.max, {"new": 0, "open": 4, "pending": 3, "solved": 13, "closed": 80}),
)
HISTORY = timedelta(days=120)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _at_most(stamp: datetime, now: datetime) -> datetime:
    return min(stamp, now - timedelta(seconds=1))


def generate(
    count: int, now: datetime, targets: dict[str, dict[str, timedelta]], seed: int = 20_240_601
) -> tuple[list[dict], list[dict]]:
    """``count`` ticket rows (oldest first) and their comments, the way the service would store them.

    ``targets`` maps a priority to its SLA due times as offsets from the ticket's creation.
    """
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    comments: list[dict[str, Any]] = []
    step = HISTORY / count
    for n in range(count):
        created = now - HISTORY + step * n + timedelta(seconds=rng.uniform(0, step.total_seconds() * 0.9))
        age = now - created
        status = _pick(rng, next(weights for limit, weights in STATUS_BY_AGE if age < limit))
        priority = _pick(rng, PRIORITY_WEIGHTS)
        queue = _pick(rng, QUEUES)
        agent = f"support_agent:{rng.choice(AGENTS)}"
        automatic = queue == "shipments" and rng.random() < 0.3
        subject = rng.choice(SUBJECTS)
        ticket_id = str(uuid.uuid4())
        row: dict[str, Any] = {
            "id": ticket_id,
            "subject": subject if rng.random() < 0.5 else f"{subject} (order ORD-{rng.randrange(10**6):06d})",
            "description": rng.choice(DESCRIPTIONS),
            "type": "incident" if automatic else _pick(rng, TYPE_WEIGHTS),
            "priority": priority,
            "status": status,
            "queue": queue,
            "tags": json.dumps(
                ["automatic", "exception"] if automatic else rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))
            ),
            "assignee": None if status == "new" and rng.random() < 0.8 else agent,
            "shipment_id": str(uuid.uuid4()) if queue == "shipments" else None,
            "order_reference": f"ORD-{rng.randrange(10**6):06d}" if queue != "warehouse" else None,
            "tracking_number": f"3SBENCH{n:08d}" if queue == "shipments" else None,
            "created_by": "service:support" if automatic else agent,
            "created_at": created,
            "first_responded_at": None,
            "sla_paused_at": None,
            "sla_first_response_breached_at": None,
            "sla_resolution_breached_at": None,
            **{column: created + offset for column, offset in targets[priority].items()},
        }
        # Comments: a first public answer (stops the first-response clock), then replies and notes.
        updated = created
        replies = 0 if status == "new" else rng.choice((0, 1, 1, 2, 2, 3, 4))
        for k in range(replies):
            updated = _at_most(updated + timedelta(minutes=rng.uniform(5, 600)), now)
            public = k == 0 or rng.random() < 0.7
            comments.append(
                {
                    "ticket_id": ticket_id,
                    "body": HIT_COMMENT if rng.random() < 0.005 else rng.choice(COMMENTS),
                    "visibility": "public" if public else "internal",
                    "author": agent if k % 2 == 0 else row["created_by"],
                    "created_at": updated,
                }
            )
            if public and row["first_responded_at"] is None:
                row["first_responded_at"] = updated
        if status in ("solved", "closed", "pending"):
            updated = _at_most(updated + timedelta(hours=rng.uniform(1, 72)), now)
        if status == "pending":
            row["sla_paused_at"] = updated
        row["updated_at"] = updated
        row["version"] = 1 + replies + (status != "new") + (status == "closed")
        _mark_breaches(row, now)
        rows.append(row)
    return rows, comments


def _mark_breaches(row: dict[str, Any], now: datetime) -> None:
    """What the worker's sweep would have marked by now, so it does not mark thousands mid-run."""
    late = timedelta(seconds=30)  # the sweep runs once a minute
    responded = row["first_responded_at"]
    first_due, resolution_due = row["first_response_due"], row["resolution_due"]
    if (responded is None and first_due < now and row["status"] in sla.OPEN_STATES) or (
        responded is not None and responded > first_due
    ):
        row["sla_first_response_breached_at"] = _at_most(first_due + late, now)
    finished = row["updated_at"] if row["status"] in ("solved", "closed") else now
    if row["status"] != "pending" and resolution_due < finished:
        row["sla_resolution_breached_at"] = _at_most(resolution_due + late, now)


@dataclass
class Seeded:
    tickets: int
    comments: int
    seconds: float
    #: How many tickets match each measured query (from SQL, the service's filter semantics).
    matches: dict[str, int] = field(default_factory=dict)
    deep_cursor: str = ""
    deep_position: int = 0


def seed_tickets(database_url: str, count: int, var_dir: str) -> Seeded:
    """Insert the tickets and comments in batches through support's own tables, then VACUUM ANALYZE."""
    engine = make_engine(make_settings("support", database_url, BROKER_URL, "unused", var_dir))
    started = time.monotonic()
    try:
        # The service's own SLA policy (the sla_policies table its migrations seed), read once.
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        with Session(engine) as session:
            targets = {
                priority: {
                    column: due - epoch for column, due in sla.due_times(session, priority, epoch).items()
                }
                for priority in PRIORITIES
            }
        rows, comments = generate(count, datetime.now(UTC), targets)
        with engine.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(tickets.insert(), rows[start : start + 1000])
            for start in range(0, len(comments), 2000):
                conn.execute(ticket_comments.insert(), comments[start : start + 2000])
        with engine.connect() as conn:
            # Autovacuum would have vacuumed and analysed tables this size long ago in a live
            # database; VACUUM also merges the GIN indexes' pending lists (the search indexes),
            # which a bulk insert leaves unmerged and the planner then avoids.
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("tickets", "ticket_comments"):
                auto.execute(text(f"VACUUM ANALYZE {table}"))
            seeded = Seeded(len(rows), len(comments), time.monotonic() - started)
            count_sql = {
                "all": "SELECT count(*) FROM tickets",
                "open_high": "SELECT count(*) FROM tickets WHERE status = 'open' AND priority = 'high'",
                "mine_open": "SELECT count(*) FROM tickets WHERE status = 'open' AND assignee = :me",
            }
            for name, sql in count_sql.items():
                seeded.matches[name] = conn.execute(text(sql), {"me": f"support_agent:{ME}"}).scalar_one()
            for name, word in (("hit", HIT_WORD), ("miss", MISS_WORD)):
                seeded.matches[name] = conn.execute(
                    text(
                        "SELECT count(*) FROM tickets WHERE subject ILIKE :pattern OR id IN "
                        "(SELECT ticket_id FROM ticket_comments WHERE body ILIKE :pattern)"
                    ),
                    {"pattern": f"%{word}%"},
                ).scalar_one()
            # The cursor the service itself would hand out after the ticket at 90% of the list.
            seeded.deep_position = max(1, count * 9 // 10)
            created_at, ticket_id = conn.execute(
                text("SELECT created_at, id FROM tickets ORDER BY created_at, id OFFSET :skip LIMIT 1"),
                {"skip": seeded.deep_position - 1},
            ).one()
            seeded.deep_cursor = encode_cursor(aware(created_at).isoformat(), ticket_id)
            seeded.matches["deep"] = count - seeded.deep_position
    finally:
        engine.dispose()
    return seeded


# -- part 1: list and search throughput ------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    label: str
    params: dict[str, str]
    matches: int
    #: Checks one returned page beyond its length; returns what is wrong, if anything.
    check: Any = None

    def url(self, base: str) -> str:
        query = urllib.parse.urlencode(self.params)
        return f"{base}/v1/tickets" + (f"?{query}" if query else "")


def queries(seeded: Seeded) -> list[Query]:
    mine = f"support_agent:{ME}"

    def all_match(**expected: str) -> Any:
        def check(items: list[dict[str, Any]]) -> str:
            wrong = [item for item in items if any(item[k] != v for k, v in expected.items())]
            return f"{len(wrong)} items do not have {expected}" if wrong else ""

        return check

    def mentions(word: str) -> Any:
        def check(items: list[dict[str, Any]]) -> str:
            # A match may be in a comment only (not in the response): look for subject hits.
            if not items or any(word in item["subject"].lower() for item in items):
                return ""
            return f"no subject has {word!r}"

        return check

    def after_deep(items: list[dict[str, Any]]) -> str:
        first = seeded.deep_position + 1  # ticket numbers follow the insertion (= creation) order
        return "" if items and items[0]["number"] == first else f"the page does not start at #{first}"

    return [
        Query("GET /v1/tickets (first page)", {}, seeded.matches["all"]),
        Query(
            "GET /v1/tickets?status=open&priority=high",
            {"status": "open", "priority": "high"},
            seeded.matches["open_high"],
            all_match(status="open", priority="high"),
        ),
        Query(f"GET /v1/tickets?q={HIT_WORD}", {"q": HIT_WORD}, seeded.matches["hit"], mentions(HIT_WORD)),
        Query(f"GET /v1/tickets?q={MISS_WORD} (no match)", {"q": MISS_WORD}, seeded.matches["miss"]),
        Query(
            "GET /v1/tickets?assignee=me&status=open",
            {"assignee": "me", "status": "open"},
            seeded.matches["mine_open"],
            all_match(status="open", assignee=mine),
        ),
        Query(
            f"GET /v1/tickets?cursor=<after #{seeded.deep_position}>",
            {"cursor": seeded.deep_cursor},
            seeded.matches["deep"],
            after_deep,
        ),
    ]


def smoke_test(query: Query, url: str, token: str) -> None:
    """The page must be exactly as long as the seeded data says, and hold what was asked for."""
    status, body = core.http_json("GET", url, token=token)
    items = body.get("items") if isinstance(body, dict) else None
    if status != 200 or not isinstance(items, list):
        raise SystemExit(f"GET {url} answered {status}: {str(body)[:2000]}")
    expected = min(PAGE, query.matches)
    problem = f"{len(items)} items, expected {expected}" if len(items) != expected else ""
    if not problem and query.check is not None:
        problem = query.check(items)
    if problem:
        raise SystemExit(f"GET {url}: {problem}:\n{json.dumps(body)[:2000]}")


def measure_lists(
    wrk: Wrk, base: str, token: str, seeded: Seeded, server: Server
) -> list[tuple[Query, WrkResult]]:
    measured = queries(seeded)
    for query in measured:
        smoke_test(query, query.url(base), token)
    auth = f"Authorization: Bearer {token}"
    results = [(query, wrk.measure(query.label, query.url(base), headers=(auth,))) for query in measured]
    if any(result.failed for _, result in results):
        print(f"--- support web log (tail) ---\n{server.output()}", file=sys.stderr)
    return results


# -- part 2: the projection's lag ------------------------------------------------------------------


class ViewPoller(Poller):
    """Polls support's ``shipment_view`` over SQL for pending references; when each first appeared.

    The kit's ``Driver`` registers each shipment with it (``expect`` before the POST, ``forget``
    when the POST failed). ``seen`` holds the wall clock (``time.time()``) right after the query
    that first returned the row: an upper bound, one poll cycle of resolution.
    """

    def __init__(self, database_url: str, interval: float) -> None:
        super().__init__("view-poller")
        self.database_url, self.interval = database_url, interval
        self.seen: dict[str, float] = {}
        self.cycles: list[float] = []
        self.query_seconds = 0.0
        self.error: str = ""

    def reset_stats(self) -> None:
        with self.lock:
            self.cycles, self.query_seconds = [], 0.0

    def _run(self) -> None:
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                previous: float | None = None
                while not self.stop.is_set():
                    with self.lock:
                        references = list(self.pending)
                    if not references:
                        previous = None  # an idle gap is not a poll cycle
                        self.stop.wait(self.interval)
                        continue
                    started = time.monotonic()
                    found = conn.execute(
                        "SELECT reference FROM shipment_view WHERE reference = ANY(%s)", (references,)
                    ).fetchall()
                    wall, now = time.time(), time.monotonic()
                    with self.lock:
                        for (reference,) in found:
                            if self.pending.pop(reference, None) is not None:
                                self.seen[reference] = wall
                        self.query_seconds += now - started
                        if previous is not None:
                            self.cycles.append(started - previous)
                    previous = started
                    self.stop.wait(max(0.0, started + self.interval - time.monotonic()))
        except Exception as exc:
            self.error = f"{exc.__class__.__name__}: {exc}"


@dataclass
class Lag:
    sent: list[Sent]
    seen: dict[str, float]
    cpu: str
    cycle_ms: float
    query_ms: float
    observed_ms: list[float] = field(default_factory=list)
    stamped_ms: list[float] = field(default_factory=list)
    relay_ms: list[float] = field(default_factory=list)
    consumer_ms: list[float] = field(default_factory=list)
    answered_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    never: int = 0
    unroutable: int = 0
    missing_outbox: int = 0

    @property
    def created(self) -> list[Sent]:
        return [item for item in self.sent if item.status == 201]

    @property
    def failed(self) -> list[Sent]:
        return [item for item in self.sent if item.start and item.status != 201]


def _timestamps(urls: dict[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, datetime]]:
    """Shipping's ``shipment.requested`` outbox rows by reference; support's handler stamps by event."""
    outbox: dict[str, dict[str, Any]] = {}
    with psycopg.connect(urls["shipping"]) as conn:
        for event_id, payload, created_at, published_at, last_error in conn.execute(
            "SELECT event_id, payload, created_at, published_at, last_error FROM outbox "
            "WHERE event_type = 'shipment.requested'"
        ):
            reference = json.loads(payload)["data"]["reference"]
            outbox[reference] = {
                "event_id": event_id,
                "created_at": created_at,
                "published_at": published_at,
                "last_error": last_error,
            }
    with psycopg.connect(urls["support"]) as conn:
        handled = dict(
            conn.execute(
                "SELECT event_id, processed_at FROM inbox WHERE handler = 'shipment_view'"
            ).fetchall()
        )
    return outbox, handled


def run_lag_phase(
    driver: Driver[ViewPoller],
    poller: ViewPoller,
    count: int,
    rate: float,
    settle: float,
    urls: dict[str, str],
    pids: dict[str, int],
    stop: threading.Event,
) -> Lag:
    poller.reset_stats()
    cpu = CpuMeter(pids)
    sent = driver.create(count, rate, stop)
    wait_seen(poller, sent, settle)
    cpu_line = cpu.read()
    with poller.lock:
        seen = {item.reference: poller.seen[item.reference] for item in sent if item.reference in poller.seen}
        cycles, query_seconds = list(poller.cycles), poller.query_seconds
        for item in sent:
            poller.pending.pop(item.reference, None)
    polls = len(cycles) + 1
    lag = Lag(
        sent,
        seen,
        cpu_line,
        cycle_ms=statistics.fmean(cycles) * 1000 if cycles else float("nan"),
        query_ms=query_seconds / polls * 1000,
    )
    outbox, handled = _timestamps(urls)
    for item in lag.created:
        lag.post_ms.append((item.end - item.start) * 1000)
        row = outbox.get(item.reference)
        if row is None:
            lag.missing_outbox += 1
            continue
        if row["last_error"]:
            lag.unroutable += 1
        committed = row["created_at"].timestamp()
        if item.reference not in seen:
            lag.never += 1
        else:
            lag.observed_ms.append((seen[item.reference] - committed) * 1000)
            if item.wall is not None:
                answered = item.wall.timestamp() + (item.end - item.start)
                lag.answered_ms.append((seen[item.reference] - answered) * 1000)
        processed = handled.get(row["event_id"])
        if processed is not None:
            lag.stamped_ms.append((processed.timestamp() - committed) * 1000)
        if row["published_at"] is not None:
            published = row["published_at"].timestamp()
            lag.relay_ms.append((published - committed) * 1000)
            if processed is not None:
                lag.consumer_ms.append((processed.timestamp() - published) * 1000)
    return lag


def projection_smoke_test(
    driver: Driver[ViewPoller], poller: ViewPoller, support_base: str, token: str, stop: threading.Event
) -> str:
    """One shipment must reach support's read model, and support's API must show it."""
    sent = driver.create(1, None, stop)
    if sent[0].status != 201:
        raise SystemExit(f"POST /v1/shipments on shipping failed: {sent[0].error}")
    wait_seen(poller, sent, SMOKE_TIMEOUT)
    if sent[0].reference not in poller.seen:
        raise SystemExit(
            f"shipment {sent[0].reference} not in support's shipment_view after {SMOKE_TIMEOUT:.0f}s"
            + (f" (poller: {poller.error})" if poller.error else "")
        )
    url = f"{support_base}/v1/shipments/{sent[0].id}"
    status, body = core.http_json("GET", url, token=token)
    if status != 200 or not isinstance(body, dict) or body.get("reference") != sent[0].reference:
        raise SystemExit(f"GET {url} on support answered {status}: {body}")
    return str(body.get("status"))


# -- output ----------------------------------------------------------------------------------------


def render(
    facts: list[tuple[str, str]],
    bare: WrkResult,
    lists: list[tuple[Query, WrkResult]],
    seeded: Seeded,
    lag: Lag,
    view_status: str,
    args: argparse.Namespace,
) -> str:
    title = "Support benchmark: ticket list/search on seeded tickets vs a bare endpoint; projection lag"
    lines = ["", title, ""]
    lines += fact_lines(facts, 17)
    lines.append(
        f"  {'data':<17} {seeded.tickets} tickets, {seeded.comments} comments (inserted in "
        f"{seeded.seconds:.1f}s, then VACUUM ANALYZE); token support_agent:{ME}; "
        f"page = {PAGE} (default limit)"
    )

    top = header("endpoint", 46, "vs bare", "match")
    lines += ["", top, "-" * len(top)]
    rows: list[tuple[str, WrkResult, str]] = [(bare.name, bare, "")]
    rows += [(query.label, result, str(query.matches)) for query, result in lists]
    for name, result, matches in rows:
        ratio = result.requests_per_s / bare.requests_per_s if bare.requests_per_s else float("nan")
        lines.append(
            f"{name:<46} {cells(result, ratio)} {matches:>8}" + ("   <-- ERRORS" if result.failed else "")
        )
    lines.append(
        f"  match: tickets of the {seeded.tickets} that the query selects (counted in SQL); each request "
        f"returns the first {PAGE} of them, oldest first"
    )
    lines += failures([result for _, result, _ in rows if result.failed], len(top))

    lines += [
        "",
        f"Projection lag: shipping's shipment.requested -> support's shipment_view, "
        f"{len(lag.created)} shipments at {args.rate:g}/s for {args.seconds:g}s (POSTed by {args.clients} "
        "clients)",
        "",
    ]
    top = f"{'ms':<58} {'n':>5} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}"
    lines += [top, "-" * len(top)]

    def row(label: str, values: list[float]) -> None:
        lines.append(f"{label:<58} {len(values):>5} {distribution(values)}")

    row("outbox created_at -> visible in shipment_view (observed)", lag.observed_ms)
    row("outbox created_at -> handler's processed_at (stamped)", lag.stamped_ms)
    row("  relay:    created_at -> published_at", lag.relay_ms)
    row("  consumer: published_at -> processed_at", lag.consumer_ms)
    row("POST answered (201) -> visible (observed)", lag.answered_ms)
    row("POST /v1/shipments round trip (shipping)", lag.post_ms)
    lines += [
        "",
        "  created_at   shipping's outbox row: datetime.now() in the web process just before the INSERT,",
        "               inside the request's transaction, so a little before the commit (lag is overstated",
        "               by the rest of that transaction; 'POST answered' is after the commit: understated)",
        "  visible      wall clock right after the first SQL poll of support's shipment_view that returned",
        f"               the row; polled every {args.poll_ms:g} ms (mean cycle {ms(lag.cycle_ms)} ms, "
        f"mean query {ms(lag.query_ms)} ms)",
        "  processed_at support's inbox row for handler shipment_view: datetime.now() in the consumer",
        "               before the batch's commit (a lower bound of visibility)",
        "  published_at the relay's mark, after the broker confirmed the batch and before the relay commits",
        "  all are this machine's wall clock (shipping web, shipping worker, support worker, this script)",
        "",
        f"  never visible within {args.settle:g}s: {lag.never} · POSTs failed: {len(lag.failed)} · "
        f"returned unroutable by the broker: {lag.unroutable} · no outbox row: {lag.missing_outbox}",
        f"  support's GET /v1/shipments/{{id}} showed the smoke-test shipment as {view_status!r}",
        f"  {lag.cpu}",
    ]
    if lag.failed:
        errors = sorted({item.error[:120] for item in lag.failed})
        lines += [f"  !!! POST failed: {error}" for error in errors[:3]]
    lines.append("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, settings: WrkSettings, exe: str, stop: threading.Event) -> tuple[str, bool]:
    namespace = f"benchsupport{uuid.uuid4().hex[:8]}"
    wrk = Wrk(exe, settings)
    facts = machine_facts(settings, wrk)
    facts += [
        ("broker", f"{broker_version(args.broker_url)} · namespace {namespace}"),
        (
            "lag processes",
            f"logistics serve shipping (--threads {args.web_threads}) · logistics worker shipping|support "
            "(1 consumer + relay each), default settings",
        ),
    ]
    with ExitStack() as stack:
        # Unwound last to first: servers stop, then databases drop, then the queues go.
        stack.callback(safely_delete_namespace, args.broker_url, namespace)
        var_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-support-"))
        print(f"creating {DATABASES['support']} and {DATABASES['shipping']} ...", file=sys.stderr)
        urls = stack.enter_context(databases(args.pg_url, DATABASES))
        threads = max(args.threads, args.web_threads)
        env = core.deployment_env(urls, var_dir, threads, args.broker_url, namespace)
        core.migrate(env, "support")
        core.migrate(env, "shipping")
        agent = core.token(env, "support_agent", ME)
        admin = core.admin_token(env)

        print(f"seeding {args.tickets} tickets and their comments ...", file=sys.stderr)
        seeded = seed_tickets(urls["support"], args.tickets, var_dir)

        bare = measure_bare(wrk, settings)
        support_web = core.web_server("support web", "support", env, threads=args.threads, host="127.0.0.1")
        stack.enter_context(support_web)
        support_base = support_web.base_url
        lists = measure_lists(wrk, support_base, agent, seeded, support_web)

        # Part 2. The consumer first: its queues must be bound before shipping publishes.
        shipping_web = core.web_server("shipping web", "shipping", env, threads=args.web_threads)
        servers = [
            support_web,
            core.worker_server("support worker", "support", env),
            shipping_web,
            core.worker_server("shipping worker", "shipping", env),
        ]
        print(f"starting support's worker, shipping's web and worker ({namespace}) ...", file=sys.stderr)
        for server in servers[1:]:
            stack.enter_context(server)
        pids = {server.name: server.process.pid for server in servers if server.process is not None}
        pids["bench script"] = os.getpid()

        poller = stack.enter_context(ViewPoller(urls["support"], args.poll_ms / 1000))
        # The kit's shipment driver, with the poller as what watches for each shipment.
        driver = Driver(shipping_web.base_url, admin, poller, args.clients, uuid.uuid4().hex[:6])
        try:
            view_status = projection_smoke_test(driver, poller, support_base, agent, stop)
        except SystemExit:
            core.print_logs(servers)
            raise
        print(f"warming up with {WARMUP_SHIPMENTS} shipments ...", file=sys.stderr)
        warm = driver.create(WARMUP_SHIPMENTS, args.rate, stop)
        wait_seen(poller, warm, args.settle)
        print(
            f"measuring the projection's lag: {args.rate:g} shipments/s for {args.seconds:g}s ...",
            file=sys.stderr,
        )
        count = max(1, round(args.rate * args.seconds))
        lag = run_lag_phase(driver, poller, count, args.rate, args.settle, urls, pids, stop)
        if poller.error:
            raise SystemExit(f"the shipment_view poller failed: {poller.error}")
        if lag.never or lag.failed:
            core.print_logs(servers)
        failed = any(result.failed for result in [bare, *(result for _, result in lists)])
        report = render(facts, bare, lists, seeded, lag, view_status, args)
        return report, failed or bool(lag.never)


def parse_args() -> tuple[argparse.Namespace, WrkSettings]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="support's waitress threads (and wrk threads); default 4"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run; default 10")
    parser.add_argument("--connections", type=int, default=16, help="open wrk connections; default 16")
    parser.add_argument("--warmup", type=int, default=2, help="discarded seconds before each run; default 2")
    parser.add_argument("--tickets", type=int, default=10_000, help="tickets to seed; default 10000")
    parser.add_argument("--rate", type=float, default=20.0, help="shipments/s in the lag phase; default 20")
    parser.add_argument("--seconds", type=float, default=20.0, help="lag phase length; default 20")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="shipment_view poll interval; default 5")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients POSTing shipments; default 4")
    parser.add_argument(
        "--web-threads", type=int, default=8, help="shipping's waitress threads; default 8 (the CLI's)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds to wait for stragglers after the phase; default 30",
    )
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server; default {PG_URL}")
    parser.add_argument("--broker-url", default=BROKER_URL, help=f"RabbitMQ; default {BROKER_URL}")
    args = parser.parse_args()
    if min(args.threads, args.duration, args.connections, args.tickets, args.clients, args.web_threads) < 1:
        parser.error(
            "--threads, --duration, --connections, --tickets, --clients, --web-threads must be positive"
        )
    if min(args.rate, args.seconds, args.poll_ms) <= 0 or args.warmup < 0 or args.settle < 0:
        parser.error("--rate, --seconds and --poll-ms must be positive, --warmup and --settle not negative")
    settings = WrkSettings(
        args.threads, args.connections, args.duration, args.warmup, "postgres", args.pg_url
    )
    return args, settings


def main() -> int:
    args, settings = parse_args()
    exe = ensure_wrk()
    return stoppable_main(lambda stop: run(args, settings, exe, stop))


if __name__ == "__main__":
    sys.exit(main())

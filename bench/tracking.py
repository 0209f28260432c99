"""GET /v1/tracking/{number} on the shipping service: uncached, Redis only, in-process + Redis.

    .venv/bin/python bench/tracking.py [--threads 4] [--duration 10] [--connections 16]
                                       [--warmup 2] [--pg-url ...] [--redis-url ...]

One run on one machine. A fresh PostgreSQL database (``bench_tracking``, dropped first if it
exists) gets one carrier and service, one shipment made ready the way the shipping worker
would, one label bought over HTTP and 20 tracking events posted through the signed carrier
webhook. Then three ``logistics serve shipping`` subprocesses, one after the other and with
the same waitress threads, are measured under the same wrk load:

(1) uncached:            LOGISTICS_CACHE_LOCAL_SECONDS=0, no LOGISTICS_REDIS_URL
(2) Redis only:          LOGISTICS_CACHE_LOCAL_SECONDS=0, LOGISTICS_REDIS_URL=--redis-url
(3) in-process + Redis:  LOGISTICS_REDIS_URL=--redis-url, every cache setting at its default

Every request asks for the same tracking number: the hot-key case, the best case for (3).
The ratios of (2) and (3) to (1) are the result; absolute numbers from a noisy 2-core machine
do not compare between runs. Nothing asserts on speed, but the cache is checked to be doing
its job: the service swallows Redis errors (it logs a warning and reads the database), so a
broken Redis level would pass for a slow one. A row is marked SUSPECT when its server logged
Redis warnings, when the Redis key is missing after a Redis run, or when (2) saw fewer Redis
keyspace hits than requests. Exits 1 when any run saw non-2xx responses or socket errors, or
is suspect (its numbers do not measure what its label says). At the end, also on errors, Ctrl-C or SIGTERM
(exit status 130), every server is stopped, the database dropped and the one Redis key the
run wrote (``logistics:tracking:<number>``) deleted.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import re
import signal
import tempfile
import time
import uuid
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from kit import core, databases
from kit.core import ADDRESS, PG_URL, SKUS, WAREHOUSE
from kit.facts import lines as fact_lines
from kit.wrk import Wrk, WrkResult, WrkSettings, cells, ensure_wrk, failure, failures, header, machine_facts

from logistics_shared.outbox import Outbox
from logistics_shared.service import discover
from logistics_shared.settings import load_settings
from shipping.domain import shipments as shipment_domain
from shipping.domain.webhooks import signature

DATABASE_NAME = "bench_tracking"
#: A database index of its own, away from db 0; the run deletes only the key it wrote.
REDIS_URL = "redis://127.0.0.1:6379/15"
TRACKING_EVENTS = 20


# The carrier, service and shipment of tests/shipping/test_rates_labels.py.
WEBHOOK_SECRET = "bench-whsec-0123456789-abcdefghij"
CARRIER = {"code": "POSTNL", "name": "PostNL", "webhook_secret": WEBHOOK_SECRET}
SERVICE = {
    "code": "standard",
    "name": "Standard",
    "rate_table": {
        "currency": "EUR",
        "dim_divisor": 5000,
        "zones": [
            {"name": "nl", "countries": ["NL"]},
            {"name": "ams", "countries": ["NL"], "postal_prefixes": ["10", "11"]},
            {"name": "eu", "countries": ["BE", "DE", "FR"]},
        ],
        "weight_bands": [
            {"max_g": 2000, "prices": {"nl": 495, "ams": 395, "eu": 995}},
            {"max_g": 10000, "prices": {"nl": 795, "ams": 695, "eu": 1595}},
            {"max_g": 30000, "prices": {"nl": 1295, "ams": 1195}},
        ],
    },
}
SHIPMENT = {
    "reference": "BENCH-TRACKING-1",
    "warehouse": WAREHOUSE,
    "ship_to": {**ADDRESS, "postal_code": "1011AB"},
    "lines": [{"sku": SKUS[0], "quantity": 2}],
    "parcels": [{"weight_g": 1200, "length_mm": 200, "width_mm": 150, "height_mm": 100}],
}
HUBS = ("Rotterdam hub", "Utrecht sorting centre", "Nieuwegein depot", "Amsterdam sorting centre")


@dataclass(frozen=True)
class Config:
    label: str
    env: dict[str, str]
    uses_redis: bool

    def describe(self) -> str:
        """The cache settings the service process will read from this environment."""
        settings = load_settings("shipping", environ=self.env)
        local = f"in-process {settings.cache_local_seconds:g} s" if settings.cache_local_seconds > 0 else ""
        shared = f"Redis {settings.cache_shared_seconds} s" if settings.redis_url else ""
        return " + ".join(part for part in (local, shared) if part) or "no cache"


@dataclass(frozen=True)
class Row:
    config: Config
    result: WrkResult
    redis_hits: int
    redis_misses: int
    redis_key_after: bool
    cache_warnings: list[str]

    @property
    def suspect(self) -> list[str]:
        """Why the row does not measure what its label says, if it does not."""
        notes = []
        if self.cache_warnings:
            distinct = sorted(set(self.cache_warnings))
            notes.append(
                f"{len(self.cache_warnings)} Redis warnings in the server log tail "
                f"(the service swallows them): {'; '.join(distinct)}"
            )
        if self.config.uses_redis and not self.redis_key_after:
            notes.append(
                "the Redis key is missing after the run: the service did not (or could not) write it"
            )
        if self.config.label.startswith("(2)") and self.redis_hits < self.result.requests:
            notes.append(
                f"only {self.redis_hits} Redis hits for {self.result.requests} requests: "
                "Redis did not serve this run, the database did"
            )
        return notes


class RedisKey:
    """The one key of the run, its server's hit counters, and its deletion."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.key = ""

    def version(self) -> str:
        try:
            return f"Redis {self.client.info('server')['redis_version']}"
        except redis.RedisError as exc:
            raise SystemExit(f"cannot reach Redis at {self.url}: {exc}") from None

    def use(self, number: str) -> None:
        self.key = f"logistics:tracking:{number}"

    def counters(self) -> tuple[int, int]:
        stats = self.client.info("stats")
        return int(stats["keyspace_hits"]), int(stats["keyspace_misses"])

    def exists(self) -> bool:
        return bool(self.key) and bool(self.client.exists(self.key))

    def forget(self) -> None:
        if self.key:
            self.client.delete(self.key)

    def close(self) -> None:
        try:
            self.forget()
            if self.key:
                print(f"deleted Redis key {self.key} ({self.url})", file=sys.stderr)
        except redis.RedisError as exc:
            print(f"could not delete Redis key {self.key}: {exc}", file=sys.stderr)
        self.client.close()


# -- set-up -----------------------------------------------------------------------------------------


def make_ready(env: dict[str, str], shipment_id: str) -> None:
    """Shipping's saga step for ``stock.reserved``, run in-process as the worker would."""
    registry = discover()["shipping"].configure(load_settings("shipping", environ=env)).registry
    try:
        factory = registry["dbsession_factory"]
        table = registry["logistics.platform_tables"].outbox
        with factory() as session, session.begin():
            shipment_domain.on_stock_reserved(
                session,
                Outbox(session, table, producer="shipping"),
                {"reference": shipment_id, "reservation_id": str(uuid.uuid4())},
                "bench",
            )
    finally:
        for engine in ("dbengine_read", "dbengine"):
            registry[engine].dispose()


def post_webhook(base: str, body: dict[str, Any]) -> tuple[int, Any]:
    """One carrier event, signed like tests/shipping/test_webhook.py's ``post()``."""
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Carrier-Timestamp": stamp,
        "X-Carrier-Signature": signature(WEBHOOK_SECRET, stamp, raw),
    }
    return core.http_request("POST", f"{base}/v1/carriers/{CARRIER['code']}/webhook", raw, headers)


def seed(base: str, token: str, env: dict[str, str]) -> str:
    """Carrier, service, a ready shipment, its label and its tracking events; the tracking number."""
    post = core.http_seeder(base, token)
    post("/v1/carriers", CARRIER)
    post(f"/v1/carriers/{CARRIER['code']}/services", SERVICE)
    shipment = post("/v1/shipments", SHIPMENT)
    assert isinstance(shipment, dict)
    make_ready(env, shipment["id"])
    label = post(f"/v1/shipments/{shipment['id']}/label", {"carrier": CARRIER["code"], "service": "standard"})
    assert isinstance(label, dict)
    number = label["tracking_number"]
    # After the shipment was created and within the carriers' clock-skew allowance (5 min).
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    for n in range(TRACKING_EVENTS):
        last = n == TRACKING_EVENTS - 1
        event = {
            "event_id": f"bench-{n:03d}",
            "tracking_number": number,
            "status": "out_for_delivery" if last else "in_transit",
            "description": "Out for delivery" if last else f"Scanned at {HUBS[n % len(HUBS)]}",
            "location": HUBS[n % len(HUBS)],
            "occurred_at": (first + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        status, reply = post_webhook(base, event)
        if status != 200 or not isinstance(reply, dict) or reply.get("result") != "accepted":
            raise SystemExit(f"seeding failed: webhook event {n} -> {status}: {reply}")
    return number


def reference_lookup(base: str, token: str, number: str) -> dict[str, Any]:
    status, body = core.http_json("GET", f"{base}/v1/tracking/{number}", token=token)
    if status != 200 or not isinstance(body, dict) or len(body.get("events", ())) != TRACKING_EVENTS:
        raise SystemExit(f"GET /v1/tracking/{number} answered {status}: {body}")
    return body


# -- measurement ------------------------------------------------------------------------------------


def measure(
    config: Config,
    settings: WrkSettings,
    wrk: Wrk,
    warm: Wrk | None,
    token: str,
    number: str,
    reference: dict[str, Any],
    cache: RedisKey,
) -> Row:
    server = core.web_server(
        f"shipping {config.label}", "shipping", config.env, threads=settings.threads, host="127.0.0.1"
    )
    url = f"{server.base_url}/v1/tracking/{number}"
    auth = f"Authorization: Bearer {token}"
    with server:
        cache.forget()  # every configuration starts from a cold Redis key
        # A smoke test: the right answer, identical to the uncached one, before any measurement;
        # twice, so that the second answer comes from the cache when there is one.
        for _ in range(2):
            status, body = core.http_json("GET", url, token=token)
            if status != 200 or body != reference:
                raise SystemExit(
                    f"{config.label}: GET {url} answered {status}, not the reference lookup:\n{body}"
                )
        if warm is not None:
            warm.measure(f"{config.label} warm-up (discarded)", url, headers=(auth,))
        hits, misses = cache.counters()
        result = wrk.measure(config.label, url, headers=(auth,))
        hits_after, misses_after = cache.counters()
        log = server.output()
        row = Row(
            config=config,
            result=result,
            redis_hits=hits_after - hits,
            redis_misses=misses_after - misses,
            redis_key_after=cache.exists(),
            cache_warnings=_CACHE_WARNING.findall(log),
        )
        if result.failed or row.suspect:
            print(f"--- {config.label} server log (tail) ---\n{log}", file=sys.stderr)
        return row


#: The service's warning when Redis fails (logistics_shared.cache), in a JSON or a text log line.
_CACHE_WARNING = re.compile(r"cache tracking: redis [^\"\n]*")


def run(settings: WrkSettings, exe: str, redis_url: str, cache: RedisKey) -> tuple[list[Row], str]:
    wrk = Wrk(exe, replace(settings, warmup=0))
    warm = Wrk(exe, replace(settings, duration=settings.warmup, warmup=0)) if settings.warmup else None
    with ExitStack() as stack:
        var_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tracking-"))
        database_url = stack.enter_context(databases.database("postgres", DATABASE_NAME, settings.pg_url))
        base_env = core.service_env(database_url, var_dir, settings.threads, service="shipping")
        uncached = {**base_env, "LOGISTICS_CACHE_LOCAL_SECONDS": "0"}
        configs = [
            Config("(1) uncached", uncached, uses_redis=False),
            Config("(2) Redis only", {**uncached, "LOGISTICS_REDIS_URL": redis_url}, uses_redis=True),
            Config("(3) in-process + Redis", {**base_env, "LOGISTICS_REDIS_URL": redis_url}, uses_redis=True),
        ]
        print("migrating the shipping database ...", file=sys.stderr)
        core.migrate(uncached, "shipping")
        token = core.admin_token(uncached)

        # Seeded by a server of its own, so the three measured servers start equally fresh.
        seeder = core.web_server("shipping (seeding)", "shipping", uncached, threads=2, host="127.0.0.1")
        base = seeder.base_url
        with seeder:
            print(
                f"seeding a carrier, a labelled shipment and {TRACKING_EVENTS} tracking events ...",
                file=sys.stderr,
            )
            number = seed(base, token, uncached)
            cache.use(number)
            reference = reference_lookup(base, token, number)

        rows = [measure(config, settings, wrk, warm, token, number, reference, cache) for config in configs]
        return rows, number


# -- output -----------------------------------------------------------------------------------------


def render(rows: list[Row], facts: list[tuple[str, str]], number: str) -> str:
    title = "Tracking lookup benchmark: GET /v1/tracking/{number}, uncached vs Redis vs in-process + Redis"
    lines = ["", title, ""]
    lines += fact_lines(facts, 17)
    lines.append(
        f"  {'data':<17} 1 shipment, 1 label, {TRACKING_EVENTS} tracking events; every request asks for "
        f"{number} (one hot key)"
    )
    lines.append("")
    top = header("configuration", 56, "vs (1)") + f" {'redis hit/miss':>16}"
    lines += [top, "-" * len(top)]
    baseline = rows[0].result.requests_per_s
    for row in rows:
        result = row.result
        name = f"{row.config.label} [{row.config.describe()}]"
        ratio = result.requests_per_s / baseline if baseline else float("nan")
        counters = f"{row.redis_hits}/{row.redis_misses}"
        lines.append(
            f"{name:<56} {cells(result, ratio, '.2f')} {counters:>16}"
            + ("   <-- ERRORS" if result.failed else "")
            + ("   <-- SUSPECT" if row.suspect else "")
        )
    lines.append("")
    for row in rows[1:]:
        ratio = row.result.requests_per_s / baseline if baseline else float("nan")
        lines.append(f"  {row.config.label + ' / (1) uncached':<38} {ratio:6.2f}x req/s")
    lines.append(
        "  redis hit/miss: the Redis server's keyspace hits/misses during the measured run, "
        "server-wide (other clients add to them)"
    )
    lines += failures(
        [],
        len(top),
        [failure(row.result, row.config.label) for row in rows if row.result.failed]
        + [f"!!! {row.config.label}: {note}" for row in rows for note in row.suspect],
        verdict="these rows did not measure what their label says",
    )
    lines.append("")
    return "\n".join(lines)


def parse_args() -> tuple[WrkSettings, str]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="waitress threads (and wrk threads); default 4"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run; default 10")
    parser.add_argument("--connections", type=int, default=16, help="open wrk connections; default 16")
    parser.add_argument("--warmup", type=int, default=2, help="discarded seconds before each run; default 2")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server; default {PG_URL}")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis for (2) and (3); default {REDIS_URL}")
    args = parser.parse_args()
    if min(args.threads, args.duration, args.connections) < 1 or args.warmup < 0:
        parser.error("--threads, --duration and --connections must be positive, --warmup not negative")
    settings = WrkSettings(
        args.threads, args.connections, args.duration, args.warmup, "postgres", args.pg_url
    )
    return settings, args.redis_url


def main() -> int:
    settings, redis_url = parse_args()
    # SIGTERM unwinds like Ctrl-C: servers are stopped, the database dropped, the key deleted.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    exe = ensure_wrk()
    cache = RedisKey(redis_url)
    facts = machine_facts(settings, Wrk(exe, settings))
    facts.append(("redis", f"{cache.version()} at {redis_url} (key logistics:tracking:<number>)"))
    try:
        rows, number = run(settings, exe, redis_url, cache)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, bench database dropped", file=sys.stderr)
        return 130
    finally:
        with suppress(KeyboardInterrupt):
            cache.close()
    print(render(rows, facts, number))
    return 1 if any(row.result.failed or row.suspect for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

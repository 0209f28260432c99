"""``POST /v1/receipts`` against its limit: a bare Pyramid view doing the same writes
(level update, ledger row, outbox row) in one transaction through a ``psycopg_pool`` pool.

Both run on the same fresh, seeded inventory database, with the same waitress threads, under
the same wrk load, A and B interleaved over ``--rounds`` rounds; the table gives each one's
median req/s with its range and the median of the per-round ratios, and the load average
before and after. Every receipt lands on the same stock row (the contended worst case).

    .venv/bin/python bench/writes.py [--rounds 3] [--duration 5] [--threads 4] [--connections 16]

    .venv/bin/python bench/writes.py --serve-limit --database-url postgresql://... --port 8091

Exits 1 when any run saw non-2xx responses or socket errors (its numbers are then invalid).
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which Pyramid imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import statistics
import tempfile
import uuid
from datetime import UTC, datetime

import orjson
from kit import core, databases
from kit.core import BENCH, SKUS, WAREHOUSE
from kit.facts import lines as fact_lines
from kit.facts import load_average
from kit.results import emit
from kit.wrk import Wrk, WrkResult, WrkSettings, ensure_wrk, failures, machine_facts
from psycopg_pool import ConnectionPool
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router

DATABASE_NAME = "bench_writes"

LEVEL_SQL = (
    "UPDATE stock_levels SET on_hand = stock_levels.on_hand + %(quantity)s FROM items, warehouses"
    " WHERE items.id = stock_levels.item_id AND warehouses.id = stock_levels.warehouse_id"
    " AND items.sku = %(sku)s AND warehouses.code = %(warehouse)s"
    " RETURNING stock_levels.item_id, stock_levels.warehouse_id, stock_levels.on_hand, stock_levels.reserved"
)
LEDGER_SQL = (
    "INSERT INTO movements (item_id, warehouse_id, kind, quantity, actor, created_at)"
    " VALUES (%(item_id)s, %(warehouse_id)s, 'receipt', %(quantity)s, 'bench', %(now)s) RETURNING id"
)
OUTBOX_SQL = (
    "INSERT INTO outbox (event_id, event_type, event_version, payload, created_at)"
    " VALUES (%(event_id)s, 'stock.received', 1, %(payload)s, %(now)s)"
)


def make_limit_app(pool: ConnectionPool) -> Router:
    def receive(request: Request) -> Response:
        body = orjson.loads(request.body)
        now = datetime.now(UTC)
        params = {**body, "now": now}
        with pool.connection() as conn, conn.transaction():
            item_id, warehouse_id, on_hand, reserved = conn.execute(LEVEL_SQL, params).fetchone()
            (movement_id,) = conn.execute(
                LEDGER_SQL, {**params, "item_id": item_id, "warehouse_id": warehouse_id}
            ).fetchone()
            stock = {
                "sku": body["sku"],
                "warehouse": body["warehouse"],
                "on_hand": on_hand,
                "reserved": reserved,
                "available": on_hand - reserved,
            }
            event = {
                "id": str(uuid.uuid4()),
                "type": "stock.received",
                "data": {**stock, "movement_id": movement_id},
            }
            conn.execute(
                OUTBOX_SQL, {"event_id": event["id"], "payload": orjson.dumps(event).decode(), "now": now}
            )
        reply = orjson.dumps({"movement_id": movement_id, "stock": stock})
        return Response(body=reply, status=201, content_type="application/json")

    with Configurator() as config:
        config.add_route("receipts", "/v1/receipts")
        config.add_view(receive, route_name="receipts", request_method="POST")
        config.add_route("ping", "/ping")  # ready when this answers
        config.add_view(lambda _request: Response(b"{}"), route_name="ping", request_method="GET")
    return config.make_wsgi_app()


def serve_limit(database_url: str, port: int, threads: int) -> None:
    import waitress

    pool = ConnectionPool(database_url, min_size=threads, max_size=threads, open=True)
    waitress.serve(make_limit_app(pool), host="127.0.0.1", port=port, threads=threads, ident="bench-limit")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):>9.1f} ({min(values):.1f}-{max(values):.1f})"


def run(settings: WrkSettings, rounds: int) -> tuple[str, bool]:
    wrk = Wrk(ensure_wrk(), settings)
    facts = machine_facts(settings, wrk)
    receipt = {"warehouse": WAREHOUSE, "sku": SKUS[0], "quantity": 1}
    ours: list[WrkResult] = []
    limit: list[WrkResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-writes-") as var_dir,
        databases.database("postgres", DATABASE_NAME, settings.pg_url) as database_url,
    ):
        env = core.service_env(database_url, var_dir, settings.threads)
        print("migrating ...", file=sys.stderr)
        core.migrate(env)
        token = core.admin_token(env)
        server = core.web_server("inventory", "inventory", env, threads=settings.threads, host="127.0.0.1")
        port = core.free_port()
        bare = core.Server(
            "bare receipt view",
            [
                sys.executable,
                str(BENCH / "writes.py"),
                "--serve-limit",
                f"--database-url={database_url}",
                f"--port={port}",
                f"--threads={settings.threads}",
            ],
            ready_url=f"http://127.0.0.1:{port}/ping",
            port=port,
        )
        with server, bare:
            core.seed(core.http_seeder(server.base_url, token))
            lua_env = {**os.environ, "BENCH_BODY": json.dumps(receipt), "BENCH_TOKEN": token}
            for base in (server.base_url, bare.base_url):  # smoke test: a 201 from each
                status, answer = core.http_json("POST", f"{base}/v1/receipts", receipt, token)
                if status != 201:
                    raise SystemExit(f"POST {base}/v1/receipts answered {status}: {answer}")
            for number in range(1, rounds + 1):
                print(f"round {number}/{rounds}", file=sys.stderr)
                for results, base, name in ((ours, server.base_url, "ours"), (limit, bare.base_url, "limit")):
                    results.append(
                        wrk.measure(
                            f"{name} POST /v1/receipts",
                            f"{base}/v1/receipts",
                            script=BENCH / "receipt.lua",
                            env=lua_env,
                        )
                    )
        load_after = load_average()
    ratios = [a.requests_per_s / b.requests_per_s for a, b in zip(ours, limit, strict=True)]
    width = 34
    out = [
        "POST /v1/receipts vs a bare Pyramid + psycopg_pool view doing the same writes in one transaction",
        *fact_lines([*facts, ("rounds", f"{rounds}, A/B interleaved"), ("load after", load_after)], 18),
        "",
        f"{'endpoint':<{width}} {'median req/s (range)':>26} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for name, results in (("ours   POST /v1/receipts", ours), ("limit  bare receipt view", limit)):
        p50 = statistics.median(r.p50_ms for r in results)
        p99 = statistics.median(r.p99_ms for r in results)
        out.append(
            f"{name:<{width}} {_spread([r.requests_per_s for r in results]):>26} {p50:>8.2f} {p99:>8.2f}"
        )
    out.append(
        f"{'ours / limit':<{width}} {statistics.median(ratios):>9.3f} "
        f"({min(ratios):.3f}-{max(ratios):.3f}) per-round ratios"
    )
    emit(
        "writes",
        "POST /v1/receipts",
        statistics.median(ratios),
        "ratio to the bare write",
        low=min(ratios),
        high=max(ratios),
        goal=0.6,
        p50_ms=statistics.median(r.p50_ms for r in ours),
        p99_ms=statistics.median(r.p99_ms for r in ours),
        rounds=rounds,
    )
    failed = [r for r in (*ours, *limit) if r.failed]
    out += failures(failed, width + 44)
    return "\n".join(out), bool(failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of discarded warm-up per run")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads (both servers)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pg-url", default=databases.PG_URL)
    parser.add_argument("--serve-limit", action="store_true", help="serve the bare view (used by the bench)")
    parser.add_argument("--database-url")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve_limit:
        serve_limit(args.database_url, args.port, args.threads)
        return 0
    settings = WrkSettings(
        args.threads, args.connections, args.duration, args.warmup, "postgres", args.pg_url
    )
    return core.stoppable_main(lambda _stop: run(settings, args.rounds))


if __name__ == "__main__":
    sys.exit(main())

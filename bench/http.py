"""HTTP throughput of the inventory service as a ratio to a bare Pyramid+waitress endpoint.

One run on one machine: a bare JSON endpoint (bench/bare_app.py), then the inventory service
on a fresh, seeded database, each under the same wrk load (threads, connections, duration)
and the same number of waitress threads. The ratios are the result; absolute numbers from a
noisy 2-core machine are not comparable between runs.

    .venv/bin/python bench/http.py [--threads 4] [--duration 10] [--connections 16]
                                   [--backend postgres|sqlite]

Exits 1 when any run saw non-2xx responses or socket errors (its numbers are then invalid).
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and this file would shadow the standard
# library's ``http`` package, which urllib, Pyramid and waitress import: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import signal
import tempfile

from kit import core, databases
from kit.core import BENCH, SKUS, WAREHOUSE
from kit.facts import lines as fact_lines
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

DATABASE_NAME = "bench_inventory"


def measure_inventory(wrk: Wrk, settings: WrkSettings) -> list[WrkResult]:
    sku = SKUS[0]
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as var_dir,
        databases.database(settings.backend, DATABASE_NAME, settings.pg_url) as database_url,
    ):
        env = core.service_env(database_url, var_dir, settings.threads)
        print(f"migrating {settings.backend} database ...", file=sys.stderr)
        core.migrate(env)
        token = core.admin_token(env)
        server = core.web_server("inventory", "inventory", env, threads=settings.threads, host="127.0.0.1")
        base = server.base_url
        with server:
            print(f"seeding 1 warehouse, {len(SKUS)} items and their stock ...", file=sys.stderr)
            core.seed(core.http_seeder(base, token))

            stock_url = f"{base}/v1/stock?sku={sku}&warehouse={WAREHOUSE}"
            receipt = {"warehouse": WAREHOUSE, "sku": sku, "quantity": 1}
            _smoke_test(stock_url, f"{base}/v1/receipts", receipt, token)

            auth = f"Authorization: Bearer {token}"
            results = [
                wrk.measure(f"GET  /v1/stock?sku={sku}&warehouse={WAREHOUSE}", stock_url, headers=(auth,))
            ]
            results.append(
                wrk.measure(
                    "POST /v1/receipts (quantity 1)",
                    f"{base}/v1/receipts",
                    script=BENCH / "receipt.lua",
                    env={**os.environ, "BENCH_BODY": json.dumps(receipt), "BENCH_TOKEN": token},
                )
            )
            if any(result.failed for result in results):
                print(f"--- inventory server log (tail) ---\n{server.output()}", file=sys.stderr)
            return results


def _smoke_test(stock_url: str, receipts_url: str, receipt: dict[str, object], token: str) -> None:
    """One request of each kind first, so a wrong URL or token cannot pass for a measurement."""
    status, body = core.http_json("GET", stock_url, token=token)
    items = body.get("items") if isinstance(body, dict) else None
    if status != 200 or not items or items[0]["sku"] != SKUS[0]:
        raise SystemExit(f"GET {stock_url} answered {status}: {body}")
    status, body = core.http_json("POST", receipts_url, receipt, token=token)
    if status != 201:
        raise SystemExit(f"POST {receipts_url} answered {status}: {body}")


def render(results: list[WrkResult], facts: list[tuple[str, str]]) -> str:
    bare = results[0].requests_per_s
    title = "HTTP benchmark: inventory endpoints as a ratio to a bare Pyramid+waitress JSON endpoint"
    lines = ["", title, ""]
    lines += fact_lines(facts, 17)
    top = header("endpoint", 44, "vs bare")
    lines += ["", top, "-" * len(top)]
    for result in results:
        ratio = result.requests_per_s / bare if bare else float("nan")
        lines.append(f"{result.name:<44} {cells(result, ratio)}" + ("   <-- ERRORS" if result.failed else ""))
    lines += failures([result for result in results if result.failed], len(top))
    lines.append("")
    return "\n".join(lines)


def parse_args() -> WrkSettings:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="waitress threads (and wrk threads); default 4"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run; default 10")
    parser.add_argument("--connections", type=int, default=16, help="open wrk connections; default 16")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--warmup", type=int, default=2, help="discarded seconds before each run; default 2")
    parser.add_argument("--pg-url", default=core.PG_URL, help=f"PostgreSQL server; default {core.PG_URL}")
    args = parser.parse_args()
    if min(args.threads, args.duration, args.connections) < 1 or args.warmup < 0:
        parser.error("--threads, --duration and --connections must be positive, --warmup not negative")
    return WrkSettings(args.threads, args.connections, args.duration, args.warmup, args.backend, args.pg_url)


def main() -> int:
    settings = parse_args()
    # SIGTERM unwinds like Ctrl-C: servers are stopped and the database dropped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    wrk = Wrk(ensure_wrk(), settings)
    facts = machine_facts(settings, wrk)
    try:
        results = [measure_bare(wrk, settings), *measure_inventory(wrk, settings)]
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, bench database dropped", file=sys.stderr)
        return 130
    print(render(results, facts))
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The rate limiter's cost on the hot read, GET /v1/stock: limiter on (Redis) vs off, in
requests per second, A/B interleaved rounds.

    .venv/bin/python bench/ratelimit.py [--rounds 3] [--duration 5] [--threads 4] [--connections 16]
                                        [--redis-url redis://127.0.0.1:6379/0] [--sync-seconds S]

Two ``logistics serve inventory --server=waitress`` on the same demo database (``kit/demo_data.py``,
``LOGISTICS_BENCH_DB_PREFIX`` default ``bench_ratelimit``), the same threads and the same wrk load
with the same admin token: one with ``LOGISTICS_RATE_LIMITS_ENABLED=false`` (what every other
bench runs), one with the limiter on, counting in Redis under a key prefix of its own (deleted at
the end) with a quota no run reaches, so every request is counted and carries the two fields, and
none is refused. As deployed, a process adds its count to Redis every 0.1 s per caller
(``LOGISTICS_RATE_LIMIT_SYNC_SECONDS``); ``--sync-seconds 0`` measures one Redis round trip per
request instead. Each round measures both, in an order that
alternates between rounds; the table gives medians with ranges and the median of the per-round
ratios on/off, whose complement is the cost (issue 15's aim: under 10%). Exits 1 when any run saw
non-2xx responses or socket errors.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which Pyramid imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import statistics
import tempfile
import urllib.request
import uuid
from contextlib import ExitStack

from kit import core, results
from kit.demo_data import demo_databases, hot_reads
from kit.facts import lines as fact_lines
from kit.facts import load_average
from kit.wrk import Wrk, WrkResult, WrkSettings, ensure_wrk, failures, machine_facts

#: Issue 15: the limiter may cost the hot read at most this fraction of its throughput.
GOAL = 0.10
#: Far above what a run sends: every request is counted, none refused.
QUOTA = 1_000_000_000


def _server(name: str, env: dict[str, str], threads: int) -> core.Server:
    port = core.free_port()
    argv = [
        core.logistics_cli(),
        "serve",
        "inventory",
        "--server=waitress",
        f"--port={port}",
        f"--threads={threads}",
    ]
    return core.Server(name, argv, ready_url=f"http://127.0.0.1:{port}/readyz", env=env, port=port)


def _fields(url: str, token: str) -> tuple[int, str | None]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers.get("RateLimit")


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def run(settings: WrkSettings, rounds: int, redis_url: str, sync_seconds: str | None) -> tuple[str, bool]:
    wrk = Wrk(ensure_wrk(), settings)
    facts = machine_facts(settings, wrk)
    prefix = f"bench-rl-{uuid.uuid4().hex[:8]}"
    on_off: dict[str, list[WrkResult]] = {"on": [], "off": []}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as var_dir,
            demo_databases(var_dir, settings.pg_url, settings.threads) as data,
            ExitStack() as stack,
        ):
            path = hot_reads(data)["stock"].path
            off_env = dict(data.env)  # LOGISTICS_RATE_LIMITS_ENABLED=false (kit/core.py)
            on_env = {
                **data.env,
                "LOGISTICS_RATE_LIMITS_ENABLED": "true",
                "LOGISTICS_RATE_LIMIT_STORAGE_URL": redis_url,
                "LOGISTICS_RATE_LIMIT_KEY_PREFIX": prefix,
                "LOGISTICS_RATE_LIMIT_ADMIN_READ": str(QUOTA),
            }
            if sync_seconds is not None:
                on_env["LOGISTICS_RATE_LIMIT_SYNC_SECONDS"] = sync_seconds
            bases = {
                "on": stack.enter_context(_server("limiter on", on_env, settings.threads)).base_url,
                "off": stack.enter_context(_server("limiter off", off_env, settings.threads)).base_url,
            }
            # Both answer 200; only the limited one carries the fields (it counted in Redis).
            seen = {side: _fields(base + path, data.token) for side, base in bases.items()}
            if seen["on"][0] != 200 or not seen["on"][1] or seen["off"] != (200, None):
                raise SystemExit(f"smoke test failed: {seen}")
            auth = (f"Authorization: Bearer {data.token}",)
            for number in range(1, rounds + 1):
                print(f"round {number}/{rounds}", file=sys.stderr)
                order = ["on", "off"] if number % 2 else ["off", "on"]
                for side in order:
                    on_off[side].append(wrk.measure(f"limiter {side}", bases[side] + path, headers=auth))
            load_after = load_average()
    finally:
        _delete_keys(redis_url, prefix)
    sync = f"{sync_seconds} s" if sync_seconds is not None else "0.1 s (default)"
    return render(on_off, facts, rounds, load_after, f"{redis_url}, synced every {sync} per caller")


def _spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def render(
    on_off: dict[str, list[WrkResult]],
    facts: list[tuple[str, str]],
    rounds: int,
    load_after: str,
    redis_url: str,
) -> tuple[str, bool]:
    ratios = [a.requests_per_s / b.requests_per_s for a, b in zip(on_off["on"], on_off["off"], strict=True)]
    costs = [1 - ratio for ratio in ratios]
    width = 28
    head = f"{'GET /v1/stock?sku&warehouse':<{width}} {'req/s':>24} {'p50 ms':>18} {'p99 ms':>18}"
    out = [
        "The rate limiter's cost on the hot read: limiter on (Redis) vs off",
        *fact_lines(
            [
                *facts,
                ("limiter", f"on: {redis_url}, every request counted, none refused; off: switched off"),
                ("rounds", f"{rounds}, A/B interleaved"),
                ("load after", load_after),
            ],
            18,
        ),
        "",
        head,
        "-" * len(head),
    ]
    for side in ("on", "off"):
        runs = on_off[side]
        out.append(
            f"{'limiter ' + side:<{width}} {_spread([r.requests_per_s for r in runs]):>24} "
            f"{_spread([r.p50_ms for r in runs], '.2f'):>18} {_spread([r.p99_ms for r in runs], '.2f'):>18}"
        )
    out += [
        "",
        f"on/off throughput: {_spread(ratios, '.3f')}; cost {_spread([c * 100 for c in costs])} % "
        f"(aim: under {GOAL * 100:.0f} %)",
    ]
    results.emit(
        "ratelimit",
        "GET /v1/stock limiter cost",
        statistics.median(costs),
        "fraction of throughput",
        low=min(costs),
        high=max(costs),
        goal=GOAL,
        on_rps=statistics.median(r.requests_per_s for r in on_off["on"]),
        off_rps=statistics.median(r.requests_per_s for r in on_off["off"]),
        rounds=rounds,
    )
    failed = [r for runs in on_off.values() for r in runs if r.failed]
    out += failures(failed, len(head))
    return "\n".join(out), bool(failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of discarded warm-up per run")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads (both servers)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pg-url", default=core.PG_URL)
    parser.add_argument(
        "--redis-url", default=os.environ.get("LOGISTICS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--sync-seconds",
        default=None,
        help="LOGISTICS_RATE_LIMIT_SYNC_SECONDS of the limited side (default: its default)",
    )
    args = parser.parse_args()
    # Its own demo databases, so it can run next to bench/reads.py (which uses bench_reads_*).
    os.environ.setdefault("LOGISTICS_BENCH_DB_PREFIX", "bench_ratelimit")
    settings = WrkSettings(
        args.threads, args.connections, args.duration, args.warmup, "postgres", args.pg_url
    )
    return core.stoppable_main(lambda _stop: run(settings, args.rounds, args.redis_url, args.sync_seconds))


if __name__ == "__main__":
    sys.exit(main())

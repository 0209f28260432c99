"""The hot reads against their limit (b), in requests per second: A/B interleaved rounds.

Limit (b) is bench/limit_views.py: the same statements through a ``psycopg_pool`` pool in a bare
Pyramid view, returning the same JSON, served by the same server (waitress) with the same
threads, under the same wrk load. Our endpoints keep everything they promise: the bearer
token, the role and warehouse scope, the query's validation, metrics, the request id and the
problem responses; the tracking lookup runs uncached (no Redis, local cache off).

    .venv/bin/python bench/reads.py [--rounds 3] [--duration 5] [--threads 4] [--connections 16]
                                    [--endpoints stock,item,shipment,tickets,tracking]

The data is the demo's (``logistics demo`` over ``logistics up`` on three fresh PostgreSQL
databases, dropped at the end). Each round measures every endpoint, ours and the limit, in an
order that alternates between rounds; the table gives medians with ranges, and the median
of the per-round ratios. Exits 1 when any run saw non-2xx responses or socket errors.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which Pyramid imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field

from kit import core, results
from kit.demo_data import HOT_READS, DemoData, HotRead, demo_databases, hot_reads
from kit.facts import lines as fact_lines
from kit.facts import load_average
from kit.wrk import Wrk, WrkResult, WrkSettings, ensure_wrk, failures, machine_facts

#: The ratio issue 12 holds each hot read to.
GOAL = 0.8


@dataclass
class Pair:
    endpoint: HotRead
    ours: list[WrkResult] = field(default_factory=list)
    limit: list[WrkResult] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [a.requests_per_s / b.requests_per_s for a, b in zip(self.ours, self.limit, strict=True)]


def _servers(
    stack: ExitStack, data: DemoData, threads: int, services: set[str]
) -> dict[str, tuple[str, str]]:
    """service -> (our base URL, the limit's base URL), every server started and ready."""
    bases = {}
    for service in sorted(services):
        env = dict(data.env)
        # Uncached: the tracking lookup reads the database on every request.
        env.update(LOGISTICS_CACHE_LOCAL_SECONDS="0")
        port = core.free_port()
        ours = core.Server(
            service,
            [
                core.logistics_cli(),
                "serve",
                service,
                "--server=waitress",
                f"--port={port}",
                f"--threads={threads}",
            ],
            ready_url=f"http://127.0.0.1:{port}/readyz",
            env=env,
            port=port,
        )
        limit_port = core.free_port()
        limit = core.Server(
            f"{service} limit (b)",
            [
                sys.executable,
                str(core.BENCH / "limit_views.py"),
                f"--database-url={data.urls[service]}",
                f"--port={limit_port}",
                f"--threads={threads}",
            ],
            ready_url=f"http://127.0.0.1:{limit_port}/ping",
            port=limit_port,
        )
        stack.enter_context(ours)
        stack.enter_context(limit)
        bases[service] = (ours.base_url, limit.base_url)
    return bases


def _smoke_test(pair: Pair, bases: tuple[str, str], token: str) -> None:
    """A 200 from both with the same top-level JSON members: the two do the same work."""
    keys = []
    for base in bases:
        status, body = core.http_json("GET", base + pair.endpoint.path, token=token)
        if status != 200 or not isinstance(body, dict):
            raise SystemExit(f"GET {base}{pair.endpoint.path} answered {status}: {body}")
        keys.append(set(body))
    if keys[0] != keys[1]:
        raise SystemExit(f"{pair.endpoint.name}: ours and the limit differ in {sorted(keys[0] ^ keys[1])}")


def run(settings: WrkSettings, rounds: int, chosen: list[str]) -> tuple[str, bool]:
    wrk = Wrk(ensure_wrk(), settings)
    facts = machine_facts(settings, wrk)
    with (
        tempfile.TemporaryDirectory(prefix="bench-reads-") as var_dir,
        demo_databases(var_dir, settings.pg_url, settings.threads) as data,
        ExitStack() as stack,
    ):
        table = hot_reads(data)
        pairs = [Pair(table[name]) for name in chosen]
        bases = _servers(stack, data, settings.threads, {pair.endpoint.service for pair in pairs})
        auth = (f"Authorization: Bearer {data.token}",)
        for pair in pairs:
            _smoke_test(pair, bases[pair.endpoint.service], data.token)
        for number in range(1, rounds + 1):
            print(f"round {number}/{rounds}", file=sys.stderr)
            for pair in pairs:
                ours, limit = bases[pair.endpoint.service]
                runs = [(pair.ours, ours, "ours"), (pair.limit, limit, "limit")]
                for into, base, who in runs if number % 2 else runs[::-1]:
                    into.append(
                        wrk.measure(f"{who} {pair.endpoint.name}", base + pair.endpoint.path, headers=auth)
                    )
        load_after = load_average()
    return render(pairs, facts, rounds, load_after)


def _spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def render(pairs: list[Pair], facts: list[tuple[str, str]], rounds: int, load_after: str) -> tuple[str, bool]:
    width = 32
    head = (
        f"{'endpoint':<{width}} {'ours req/s':>22} {'limit (b) req/s':>22} {'ours/limit':>22} {'p99 ours':>9}"
    )
    out = [
        "Hot reads vs limit (b): the same statements through psycopg_pool in a bare Pyramid view",
        *fact_lines([*facts, ("rounds", f"{rounds}, A/B interleaved"), ("load after", load_after)], 18),
        "",
        head,
        "-" * len(head),
    ]
    for pair in pairs:
        ratios = pair.ratios()
        p99 = statistics.median(r.p99_ms for r in pair.ours)
        ours, limit = (
            _spread([r.requests_per_s for r in pair.ours]),
            _spread([r.requests_per_s for r in pair.limit]),
        )
        out.append(
            f"{pair.endpoint.name:<{width}} {ours:>22} {limit:>22} {_spread(ratios, '.3f'):>22} {p99:>7.1f}ms"
        )
        results.emit(
            "reads",
            pair.endpoint.name,
            statistics.median(ratios),
            "ratio to limit (b)",
            low=min(ratios),
            high=max(ratios),
            goal=GOAL,
            ours_rps=statistics.median(r.requests_per_s for r in pair.ours),
            limit_rps=statistics.median(r.requests_per_s for r in pair.limit),
            p50_ms=statistics.median(r.p50_ms for r in pair.ours),
            p99_ms=p99,
            rounds=rounds,
        )
    failed = [r for pair in pairs for r in (*pair.ours, *pair.limit) if r.failed]
    out += failures(failed, len(head))
    return "\n".join(out), bool(failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of discarded warm-up per run")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads (both servers)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--endpoints", default=",".join(HOT_READS))
    parser.add_argument("--pg-url", default=core.PG_URL)
    args = parser.parse_args()
    chosen = [name.strip() for name in args.endpoints.split(",") if name.strip()]
    if not chosen or set(chosen) - set(HOT_READS):
        parser.error(f"--endpoints: a comma list of {', '.join(HOT_READS)}")
    settings = WrkSettings(
        args.threads, args.connections, args.duration, args.warmup, "postgres", args.pg_url
    )
    return core.stoppable_main(lambda _stop: run(settings, args.rounds, chosen))


if __name__ == "__main__":
    sys.exit(main())

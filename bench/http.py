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
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import benchkit
from benchkit import SKUS, WAREHOUSE, Server, free_port

BENCH = Path(__file__).resolve().parent
DATABASE_NAME = "bench_inventory"

_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class Settings:
    threads: int
    connections: int
    duration: int
    warmup: int
    backend: str
    pg_url: str

    @property
    def wrk_threads(self) -> int:
        # wrk refuses more threads than connections.
        return min(self.threads, self.connections)


@dataclass(frozen=True)
class WrkResult:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def failed(self) -> bool:
        return self.non_2xx > 0 or any(self.socket_errors.values())


def parse_wrk(name: str, output: str) -> WrkResult:
    """Read wrk's ``--latency`` report; a missing line means wrk did not finish a run."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    percentiles = {p: float(value) * _TO_MS[unit] for p, value, unit in _PERCENTILE.findall(output)}
    if not rps or not total or set(percentiles) != {"50", "99"}:
        raise SystemExit(f"could not parse wrk's output for {name}:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = _SOCKET_ERRORS.search(output)
    counts = [int(count) for count in sockets.groups()] if sockets else [0, 0, 0, 0]
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), counts, strict=True))
    return WrkResult(
        name=name,
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not on PATH: installing it with `apt-get install -y wrk` ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, env=env, stdout=sys.stderr, check=False).returncode != 0:
        print("apt-get install failed: running `apt-get update` and trying again ...", file=sys.stderr)
        subprocess.run(["apt-get", "update"], env=env, stdout=sys.stderr, check=False)
        subprocess.run(install, env=env, stdout=sys.stderr, check=False)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk (apt-get needs root); install it and run again")
    print(f"installed {found}", file=sys.stderr)
    return found


class Wrk:
    def __init__(self, executable: str, settings: Settings) -> None:
        self.executable = executable
        self.settings = settings

    def measure(
        self,
        name: str,
        url: str,
        *,
        headers: tuple[str, ...] = (),
        script: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> WrkResult:
        """A discarded warm-up run, then the measured one, both with the same load."""
        if self.settings.warmup:
            self._run(url, self.settings.warmup, headers, script, env)
        print(f"measuring {name} for {self.settings.duration}s ...", file=sys.stderr)
        return parse_wrk(name, self._run(url, self.settings.duration, headers, script, env))

    def _run(
        self,
        url: str,
        seconds: int,
        headers: tuple[str, ...],
        script: Path | None,
        env: dict[str, str] | None,
    ) -> str:
        argv = [
            self.executable,
            f"--threads={self.settings.wrk_threads}",
            f"--connections={self.settings.connections}",
            f"--duration={seconds}s",
            "--latency",
        ]
        for header in headers:
            argv += ["--header", header]
        if script is not None:
            argv += ["--script", str(script)]
        done = subprocess.run([*argv, url], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def version(self) -> str:
        # `wrk -v` prints its version and exits non-zero.
        done = subprocess.run([self.executable, "-v"], capture_output=True, text=True, check=False)
        first = (done.stdout or done.stderr).strip().splitlines()
        return " ".join(first[0].split()[:2]) if first else "wrk (unknown version)"


def measure_bare(wrk: Wrk, settings: Settings) -> WrkResult:
    port = free_port()
    argv = [sys.executable, str(BENCH / "bare_app.py"), f"--port={port}", f"--threads={settings.threads}"]
    url = f"http://127.0.0.1:{port}/ping"
    with Server("bare Pyramid app", argv, ready_url=url):
        return wrk.measure("bare  GET /ping", url)


def measure_inventory(wrk: Wrk, settings: Settings) -> list[WrkResult]:
    sku = SKUS[0]
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as var_dir,
        benchkit.inventory_database(settings.backend, DATABASE_NAME, settings.pg_url) as database_url,
    ):
        env = benchkit.service_env(database_url, var_dir, settings.threads)
        print(f"migrating {settings.backend} database ...", file=sys.stderr)
        benchkit.migrate(env)
        token = benchkit.admin_token(env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        argv = [benchkit.logistics_cli(), "serve", "inventory", "--host=127.0.0.1", f"--port={port}"]
        argv.append(f"--threads={settings.threads}")
        with Server("inventory", argv, ready_url=f"{base}/readyz", env=env) as server:
            print(f"seeding 1 warehouse, {len(SKUS)} items and their stock ...", file=sys.stderr)
            benchkit.seed(benchkit.http_seeder(base, token))

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
    status, body = benchkit.http_json("GET", stock_url, token=token)
    items = body.get("items") if isinstance(body, dict) else None
    if status != 200 or not items or items[0]["sku"] != SKUS[0]:
        raise SystemExit(f"GET {stock_url} answered {status}: {body}")
    status, body = benchkit.http_json("POST", receipts_url, receipt, token=token)
    if status != 201:
        raise SystemExit(f"POST {receipts_url} answered {status}: {body}")


def machine_facts(settings: Settings, wrk: Wrk) -> list[tuple[str, str]]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if settings.backend == "postgres":
        backend = f"postgres ({benchkit.postgres_version(settings.pg_url)})"
    else:
        backend = f"sqlite ({sqlite3.sqlite_version}, temp file)"
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        ("cores", f"{os.cpu_count()} ({usable} usable) · {model}"),
        ("load average", f"{load} (at start)"),
        ("software", f"Python {platform.python_version()} · {wrk.version()} · {platform.system()}"),
        ("backend", backend),
        ("waitress threads", str(settings.threads)),
        (
            "wrk load",
            f"{settings.wrk_threads} threads · {settings.connections} connections · "
            f"{settings.duration}s (after a {settings.warmup}s warm-up) · same for every row",
        ),
    ]


def render(results: list[WrkResult], facts: list[tuple[str, str]]) -> str:
    bare = results[0].requests_per_s
    title = "HTTP benchmark: inventory endpoints as a ratio to a bare Pyramid+waitress JSON endpoint"
    lines = ["", title, ""]
    lines += [f"  {key:<17} {value}" for key, value in facts]
    columns = ("req/s", "p50 ms", "p99 ms", "non-2xx", "sock err", "vs bare")
    header = f"{'endpoint':<44} {columns[0]:>9} " + " ".join(f"{column:>8}" for column in columns[1:])
    lines += ["", header, "-" * len(header)]
    for result in results:
        ratio = result.requests_per_s / bare if bare else float("nan")
        lines.append(
            f"{result.name:<44} {result.requests_per_s:>9.1f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} "
            f"{result.non_2xx:>8} {sum(result.socket_errors.values()):>8} {ratio:>8.3f}"
            + ("   <-- ERRORS" if result.failed else "")
        )
    failed = [result for result in results if result.failed]
    if failed:
        lines += ["", "!" * len(header)]
        for result in failed:
            sockets = ", ".join(f"{kind} {count}" for kind, count in result.socket_errors.items() if count)
            lines.append(
                f"!!! {result.name.strip()}: {result.non_2xx} non-2xx of {result.requests} responses"
                + (f", socket errors: {sockets}" if sockets else "")
            )
        lines.append("!!! these rows measured failures, not the endpoint: their numbers are NOT valid")
        lines.append("!" * len(header))
    lines.append("")
    return "\n".join(lines)


def parse_args() -> Settings:
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
    parser.add_argument(
        "--pg-url", default=benchkit.PG_URL, help=f"PostgreSQL server; default {benchkit.PG_URL}"
    )
    args = parser.parse_args()
    if min(args.threads, args.duration, args.connections) < 1 or args.warmup < 0:
        parser.error("--threads, --duration and --connections must be positive, --warmup not negative")
    return Settings(args.threads, args.connections, args.duration, args.warmup, args.backend, args.pg_url)


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

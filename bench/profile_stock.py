"""Where a stock read spends its time: cProfile over N in-process requests, no network.

Builds the inventory WSGI app with ``inventory.service.SERVICE.configure(settings)`` on a
fresh seeded database, warms it up, times N unprofiled requests, then profiles N more of
``GET /v1/stock?sku=..&warehouse=..`` through WebTest and prints the top functions by
cumulative time *in our own code* (files under shared/ and services/), then the top
functions anywhere by own time, all per request.

    .venv/bin/python bench/profile_stock.py [--requests 2000] [--top 15]
                                            [--backend postgres|sqlite] [--save stock.prof]
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which WebTest and Pyramid import: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import cProfile
import pstats
import tempfile
import time
from dataclasses import dataclass

from kit import core, databases
from kit.core import REPO, SKUS, WAREHOUSE
from webtest import TestApp

DATABASE_NAME = "bench_inventory_profile"
OUR_CODE = tuple(f"{REPO / part}{os.sep}" for part in ("shared", "services"))


@dataclass(frozen=True)
class Row:
    filename: str
    line: int
    function: str
    calls: int
    own: float  # seconds in the function itself
    cumulative: float  # seconds including callees

    @property
    def ours(self) -> bool:
        return self.filename.startswith(OUR_CODE)

    @property
    def label(self) -> str:
        if "site-packages" in self.filename:
            where = self.filename.split(f"site-packages{os.sep}", 1)[1]
        elif self.filename.startswith(str(REPO)):
            where = os.path.relpath(self.filename, REPO)
        elif self.filename == "~":
            return self.function  # a builtin such as <method 'execute' of 'sqlite3.Cursor' objects>
        else:
            where = os.path.basename(self.filename)
        return f"{where}:{self.line}({self.function})"


def collect(profiler: cProfile.Profile) -> list[Row]:
    stats = pstats.Stats(profiler)
    return [
        Row(filename, line, function, calls, own, cumulative)
        for (filename, line, function), (_primitive, calls, own, cumulative, _callers) in stats.stats.items()  # type: ignore[attr-defined]
    ]


def render(title: str, rows: list[Row], requests: int, total: float) -> str:
    header = f"{'cum ms/req':>10} {'cum %':>6} {'own ms/req':>10} {'calls/req':>9}  function"
    lines = ["", title, header, "-" * 100]
    for row in rows:
        lines.append(
            f"{row.cumulative / requests * 1000:>10.3f} {row.cumulative / total * 100:>5.1f}% "
            f"{row.own / requests * 1000:>10.3f} {row.calls / requests:>9.1f}  {row.label}"
        )
    return "\n".join(lines)


def build_app(env: dict[str, str]) -> TestApp:
    from inventory.service import SERVICE
    from logistics_shared.logs import configure_logging
    from logistics_shared.settings import load_settings

    settings = load_settings("inventory", environ=env)
    configure_logging(settings.log_level, settings.log_format)  # as `logistics serve` does
    return TestApp(SERVICE.configure(settings).make_wsgi_app(), lint=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="profiled requests; default 2000")
    parser.add_argument("--warmup", type=int, default=200, help="requests before timing; default 200")
    parser.add_argument("--top", type=int, default=15, help="rows per table; default 15")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--pg-url", default=core.PG_URL)
    parser.add_argument("--save", metavar="FILE", help="also write the raw profile (for snakeviz, pstats)")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as var_dir,
        databases.database(args.backend, DATABASE_NAME, args.pg_url) as database_url,
    ):
        env = core.service_env(database_url, var_dir, threads=1)
        core.migrate(env)
        headers = {"Authorization": f"Bearer {core.admin_token(env)}"}
        app = build_app(env)
        try:
            core.seed(lambda path, body: app.post_json(path, body, headers=headers, status=201))
            url = f"/v1/stock?sku={SKUS[0]}&warehouse={WAREHOUSE}"
            for _ in range(args.warmup):
                app.get(url, headers=headers, status=200)

            start = time.perf_counter()
            for _ in range(args.requests):
                app.get(url, headers=headers, status=200)
            plain = time.perf_counter() - start

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.requests):
                app.get(url, headers=headers, status=200)
            profiler.disable()
        finally:
            app.app.registry["dbengine"].dispose()

    if args.save:
        profiler.dump_stats(args.save)
    rows = collect(profiler)
    total = sum(row.own for row in rows)
    n = args.requests
    print(f"\nGET {url} in-process (WebTest), backend {args.backend}")
    print(
        f"  unprofiled: {n} requests in {plain:.2f}s = {plain / n * 1000:.3f} ms/request ({n / plain:.0f}/s)"
    )
    print(f"  profiled:   {total / n * 1000:.3f} ms/request of profiled time (cProfile adds overhead)")
    ours = sorted((row for row in rows if row.ours), key=lambda row: row.cumulative, reverse=True)
    print(
        render(
            f"Top {args.top} by cumulative time in our code (shared/, services/)", ours[: args.top], n, total
        )
    )
    anywhere = sorted(rows, key=lambda row: row.own, reverse=True)
    print(render(f"Top {args.top} by own time, anywhere", anywhere[: args.top], n, total))


if __name__ == "__main__":
    main()

"""Instructions per request, counted by callgrind: our hot reads against their limit (b).

Wall-clock ratios swing with this machine's load; instruction counts do not. Each
endpoint runs in-process through WebTest (no network, the same WSGI app production
serves) under ``valgrind --tool=callgrind`` twice, with N1 and N2 requests after the
same setup and warm-up, so (I(N2) - I(N1)) / (N2 - N1) is the cost of one request —
start-up, imports and the warm-up cancel out. The limit is bench/limit_views.py: the same
SQL through psycopg_pool in a bare Pyramid view, the same JSON.

Both runs get the same ``PYTHONHASHSEED``: with a random one the start-up alone moved by
about ten million instructions from run to run (dict and set layouts), which does not
cancel and was several hundred thousand per request at ``--n2 - --n1`` of 30.

    .venv/bin/python bench/instructions.py [--endpoints stock,item,shipment,tickets,tracking]
                                           [--n1 30] [--n2 130] [--hash-seed 0]

The data is the demo's (bench/kit/demo_data.py: ``logistics demo`` on three fresh PostgreSQL
databases); the tracking lookup runs uncached (local cache off, no Redis).

Counts include PostgreSQL's client side (psycopg) but not the server, which runs in its
own process: the figure is what one replica's CPU spends per request.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which WebTest and Pyramid import: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from kit import facts, results
from kit.demo_data import HOT_READS, demo_databases, hot_reads

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
WARM_UP = 20


def _settings(service: str, database_url: str, var_dir: str) -> Any:
    from logistics_shared.settings import load_settings

    ini = {
        "database_url": database_url,
        "jwt_secret": SECRET,
        "var_dir": var_dir,
        "access_log": "false",
        "log_level": "WARNING",
        # Uncached: the tracking lookup reads the database on every request.
        "cache_local_seconds": "0",
        # Off, as in every throughput bench (bench/kit/core.py): with no Redis configured it
        # would count in this process's memory, which no deployment does; bench/ratelimit.py
        # measures the limiter's cost as deployed.
        "rate_limits_enabled": "false",
    }
    return load_settings(service, ini, environ={})


def _ours(service: str, database_url: str, var_dir: str) -> Any:
    from webtest import TestApp

    from logistics_shared.identity import Role
    from logistics_shared.security import load_keyring, mint_token
    from logistics_shared.service import discover

    settings = _settings(service, database_url, var_dir)
    token = mint_token(load_keyring(settings), role=Role.ADMIN, subject="bench", warehouses=())
    return TestApp(
        discover()[service].configure(settings).make_wsgi_app(),
        extra_environ={"HTTP_AUTHORIZATION": f"Bearer {token}"},
    )


def _limit(database_url: str) -> Any:
    # Not "limits": that is the rate limiter's package (PyPI), which an import would find first.
    from limit_views import make_app, make_pool
    from webtest import TestApp

    return TestApp(make_app(make_pool(database_url, 1)))


def inner(target: str, service: str, path: str, requests: int, database_url: str, var_dir: str) -> None:
    """The measured process: build the app, warm up, then ``requests`` requests."""
    app = _ours(service, database_url, var_dir) if target == "ours" else _limit(database_url)
    for _ in range(WARM_UP):
        app.get(path, status=200)
    for _ in range(requests):
        app.get(path, status=200)


def _count(
    target: str,
    service: str,
    path: str,
    requests: int,
    database_url: str,
    var_dir: str,
    out: Path,
    hash_seed: int,
) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--inner",
        target,
        "--service",
        service,
        "--path",
        path,
        "--requests",
        str(requests),
        "--database-url",
        database_url,
        "--var-dir",
        var_dir,
    ]
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--endpoints", default=",".join(HOT_READS), help="comma list of: " + ", ".join(HOT_READS)
    )
    parser.add_argument("--n1", type=int, default=30, help="requests in the first run")
    parser.add_argument("--n2", type=int, default=130, help="requests in the second run")
    parser.add_argument("--hash-seed", type=int, default=0, help="PYTHONHASHSEED of every measured process")
    parser.add_argument("--inner", choices=("ours", "limit"), help=argparse.SUPPRESS)
    parser.add_argument("--service", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--var-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.inner, args.service, args.path, args.requests, args.database_url, args.var_dir)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    for name, value in facts.machine():
        print(f"{name}: {value}")
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    if not endpoints or set(endpoints) - set(HOT_READS):
        parser.error(f"--endpoints: a comma list of {', '.join(HOT_READS)}")
    with tempfile.TemporaryDirectory() as var_dir, demo_databases(var_dir) as data:
        table = hot_reads(data)
        print(f"{'endpoint':<32} {'ours Ir/req':>13} {'limit Ir/req':>13} {'limit/ours':>11}")
        for endpoint in endpoints:
            read = table[endpoint]
            url = data.urls[read.service]
            per_request = {}
            for target in ("ours", "limit"):
                started = time.monotonic()
                runs = [
                    _count(
                        target,
                        read.service,
                        read.path,
                        n,
                        url,
                        var_dir,
                        Path(var_dir) / f"{target}-{n}.out",
                        args.hash_seed,
                    )
                    for n in (args.n1, args.n2)
                ]
                per_request[target] = (runs[1] - runs[0]) / (args.n2 - args.n1)
                print(
                    f"  ({target} {endpoint}: {time.monotonic() - started:.0f} s under callgrind)",
                    file=sys.stderr,
                )
            ratio = per_request["limit"] / per_request["ours"]
            print(
                f"{read.name:<32} {per_request['ours']:>13,.0f} {per_request['limit']:>13,.0f} {ratio:>11.2f}"
            )
            results.emit(
                "instructions",
                read.name,
                ratio,
                "limit (b) / ours, instructions per request",
                ours=per_request["ours"],
                limit=per_request["limit"],
                goal=0.5,
            )


if __name__ == "__main__":
    main()

"""What the benchmarks share: a throwaway inventory database, its environment, seed data,
and subprocess servers that are always stopped.

Everything here talks to the service the way an operator would: the ``logistics`` CLI for
migrations and tokens, the HTTP API (or a WSGI test client) for seed data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
PG_URL = "postgresql://postgres@127.0.0.1:5432"
#: Fixed so that a token minted by one process verifies in another.
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"
WAREHOUSE = "BENCH"
SKUS = tuple(f"BENCH-{n:03d}" for n in range(1, 51))
ADDRESS = {"name": "Bench warehouse", "line1": "Dock 1", "city": "Rotterdam", "country": "NL"}
INITIAL_STOCK = 1000


def free_port() -> int:
    """A port the kernel considers free right now (the benchmarks never use the service defaults)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logistics_cli() -> str:
    """The ``logistics`` script next to the running interpreter (the project virtualenv)."""
    beside = Path(sys.executable).parent / "logistics"
    found = str(beside) if beside.exists() else shutil.which("logistics")
    if not found:
        raise SystemExit("cannot find the `logistics` CLI; run with the project's .venv/bin/python")
    return found


def _pg_admin(pg_url: str, sql: str) -> None:
    with psycopg.connect(f"{pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def postgres_version(pg_url: str = PG_URL) -> str:
    with psycopg.connect(f"{pg_url.rstrip('/')}/postgres") as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0]}" if row else "PostgreSQL"


@contextmanager
def inventory_database(backend: str, name: str, pg_url: str = PG_URL) -> Iterator[str]:
    """Yield the URL of an empty database, dropped (or deleted) afterwards whatever happens."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'inventory.sqlite3'}"
        return
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        _pg_admin(pg_url, drop)
        _pg_admin(pg_url, f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach PostgreSQL at {pg_url}: {exc}") from None
    try:
        yield f"{pg_url.rstrip('/')}/{name}"
    finally:
        _pg_admin(pg_url, drop)
        print(f"dropped database {name}", file=sys.stderr)


def service_env(database_url: str, var_dir: str, threads: int) -> dict[str, str]:
    """The process environment for the inventory service and the CLI, quiet and deterministic.

    Inherited ``LOGISTICS_*`` variables are dropped so a developer's shell cannot change what
    is measured; ``var_dir`` keeps the run away from the repository's own ``var/``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
    env.update(
        LOGISTICS_INVENTORY_DATABASE_URL=database_url,
        LOGISTICS_JWT_SECRET=JWT_SECRET,
        LOGISTICS_ACCESS_LOG="false",
        LOGISTICS_LOG_LEVEL="WARNING",
        LOGISTICS_VAR_DIR=var_dir,
        # One connection per waitress thread at least, so the pool never queues requests.
        LOGISTICS_DB_POOL_SIZE=str(max(10, threads)),
    )
    return env


def _run_cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([logistics_cli(), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`logistics {' '.join(args)}` failed:\n{done.stderr.strip()}")
    return done.stdout.strip()


def migrate(env: dict[str, str]) -> None:
    _run_cli(["migrate", "inventory"], env)


def admin_token(env: dict[str, str]) -> str:
    return _run_cli(["token", "--role", "admin", "--subject", "bench", "--ttl", "2h"], env)


def seed(post: Callable[[str, dict[str, Any]], object]) -> None:
    """One warehouse, ``len(SKUS)`` items and ``INITIAL_STOCK`` units of each, through the API."""
    post("/v1/warehouses", {"code": WAREHOUSE, "name": "Bench warehouse", "address": ADDRESS})
    for sku in SKUS:
        post(
            "/v1/items",
            {
                "sku": sku,
                "name": f"Bench item {sku}",
                "unit_weight_g": 250,
                "length_mm": 100,
                "width_mm": 50,
                "height_mm": 20,
                "reorder_point": 5,
            },
        )
        post("/v1/receipts", {"warehouse": WAREHOUSE, "sku": sku, "quantity": INITIAL_STOCK})


def http_json(
    method: str, url: str, body: dict[str, Any] | None = None, token: str = "", timeout: float = 10.0
) -> tuple[int, Any]:
    """A single request with the standard library; returns (status, decoded JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def http_seeder(base_url: str, token: str) -> Callable[[str, dict[str, Any]], object]:
    def post(path: str, body: dict[str, Any]) -> object:
        status, reply = http_json("POST", base_url + path, body, token)
        if status >= 300:
            raise SystemExit(f"seeding failed: POST {path} -> {status}: {reply}")
        return reply

    return post


class Server:
    """A server subprocess whose output goes to a log file (shown if it fails to start)."""

    def __init__(self, name: str, argv: list[str], ready_url: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.ready_url = ready_url
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        # Unlinked already; closed on __exit__, kept until then so a failure can show it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        self._log.close()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.name} not ready at {self.ready_url} after {timeout:.0f}s:\n{self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load_http_bench() -> ModuleType:
    """bench/http.py under another name (``import http`` is the standard library's package):
    wrk, its report parser, its installer and the machine facts, for the other benches."""
    bench = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location("bench_http", bench / "http.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {bench / 'http.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module

"""The bench data, the ``logistics`` CLI, the service environment, seeding, subprocess servers.

Everything here talks to the services the way an operator would: the ``logistics`` CLI for
migrations and tokens, the HTTP API (or a WSGI test client) for seed data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
PG_URL = "postgresql://postgres@127.0.0.1:5432"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: Fixed so that a token minted by one process verifies in another.
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"
#: The Fernet key of stored secrets (carriers, webhook endpoints) in bench databases.
SECRETS_KEY = "vufL7sFfbweoRuFskpzcs5NmX_RJpO5svJFuJo_Rnb0="
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


# -- the environment and the CLI -----------------------------------------------------------------


def service_env(database_url: str, var_dir: str, threads: int, service: str = "inventory") -> dict[str, str]:
    """The process environment for one service and the CLI, quiet and deterministic.

    Inherited ``LOGISTICS_*`` variables are dropped so a developer's shell cannot change what
    is measured; ``var_dir`` keeps the run away from the repository's own ``var/``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
    env.update(
        {f"LOGISTICS_{service.upper()}_DATABASE_URL": database_url},
        LOGISTICS_JWT_SECRET=JWT_SECRET,
        LOGISTICS_SECRETS_KEY=SECRETS_KEY,
        LOGISTICS_ACCESS_LOG="false",
        LOGISTICS_LOG_LEVEL="WARNING",
        # Throughput benches measure the endpoints, not a budget: the rate limiter is off
        # (bench/ratelimit.py switches it on for the side that measures its cost).
        LOGISTICS_RATE_LIMITS_ENABLED="false",
        LOGISTICS_VAR_DIR=var_dir,
        # One connection per waitress thread at least, so the pool never queues requests.
        LOGISTICS_DB_POOL_SIZE=str(max(10, threads)),
    )
    return env


def deployment_env(
    urls: Mapping[str, str], var_dir: str, threads: int, broker_url: str, namespace: str
) -> dict[str, str]:
    """``service_env`` for several services on one broker: every subprocess (and the CLI) gets
    the same environment, as one deployment would."""
    first, *_ = urls
    env = service_env(urls[first], var_dir, threads, service=first)
    env.update({f"LOGISTICS_{service.upper()}_DATABASE_URL": url for service, url in urls.items()})
    env.update(LOGISTICS_BROKER_URL=broker_url, LOGISTICS_BUS_NAMESPACE=namespace)
    return env


def run_cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([logistics_cli(), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`logistics {' '.join(args)}` failed:\n{done.stderr.strip()}")
    return done.stdout.strip()


def migrate(env: dict[str, str], service: str = "inventory") -> None:
    run_cli(["migrate", service], env)


def token(env: dict[str, str], role: str, subject: str) -> str:
    return run_cli(["token", "--role", role, "--subject", subject, "--ttl", "2h"], env)


def admin_token(env: dict[str, str]) -> str:
    return token(env, "admin", "bench")


# -- seed data over HTTP -------------------------------------------------------------------------


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


def http_request(
    method: str,
    url: str,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """A single request with the standard library; returns (status, decoded JSON or text)."""
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def http_json(
    method: str, url: str, body: dict[str, Any] | None = None, token: str = "", timeout: float = 10.0
) -> tuple[int, Any]:
    """``http_request`` with a JSON body and a bearer token."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http_request(method, url, data, headers, timeout)


def http_seeder(base_url: str, token: str) -> Callable[[str, dict[str, Any]], object]:
    def post(path: str, body: dict[str, Any]) -> object:
        status, reply = http_json("POST", base_url + path, body, token)
        if status >= 300:
            raise SystemExit(f"seeding failed: POST {path} -> {status}: {reply}")
        return reply

    return post


# -- subprocess servers --------------------------------------------------------------------------


class Server:
    """A server subprocess whose output goes to a log file (shown if it fails to start)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        ready_url: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.ready_url = ready_url
        self.env = env
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        # Unlinked already; closed on __exit__, kept until then so a failure can show it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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


def web_server(
    name: str, service: str, env: dict[str, str], *, threads: int | None = None, host: str | None = None
) -> Server:
    """``logistics serve <service>`` on a free port, ready when its ``/readyz`` answers 200."""
    port = free_port()
    argv = [logistics_cli(), "serve", service]
    if host is not None:
        argv.append(f"--host={host}")
    argv.append(f"--port={port}")
    if threads is not None:
        argv.append(f"--threads={threads}")
    return Server(name, argv, ready_url=f"http://127.0.0.1:{port}/readyz", env=env, port=port)


def worker_server(name: str, service: str, env: dict[str, str]) -> Server:
    """``logistics worker <service>`` with its health server on a free port."""
    port = free_port()
    argv = [logistics_cli(), "worker", service, f"--health-port={port}"]
    return Server(name, argv, ready_url=f"http://127.0.0.1:{port}/readyz", env=env, port=port)


def print_logs(servers: list[Server]) -> None:
    """The tail of every server's log, to stderr (after a failed or suspect run)."""
    for server in servers:
        print(f"--- {server.name} log (tail) ---\n{server.output()}", file=sys.stderr)


def stoppable_main(run: Callable[[threading.Event], tuple[str, bool]]) -> int:
    """Run a bench whose threads watch ``stop``, print its report, return its exit status.

    SIGTERM unwinds like Ctrl-C: the bench's context managers stop its subprocesses, drop
    its databases and delete its queues on the way out. 1 when the run says it failed,
    130 when interrupted.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stop = threading.Event()
    try:
        report, failed = run(stop)
    except KeyboardInterrupt:
        stop.set()
        print("\ninterrupted: processes stopped, bench databases dropped, queues deleted", file=sys.stderr)
        return 130
    finally:
        stop.set()
    print(report)
    return 1 if failed else 0

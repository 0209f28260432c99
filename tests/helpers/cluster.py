"""The local cluster (`make cluster`: deploy/local/cluster.py under supervisord) as tests run it:
on a free block of ports, with databases, a bus namespace and a directory of its own, and the
means to kill, stop and restart one replica, read every replica's /metrics and the balancers'
own accounts (nginx's access log, HAProxy's stats)."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from .bus import wait_until
from .ports import free_block

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "deploy" / "local" / "cluster.py"
#: Ports of the cluster, from its base: the balancers at +0..+2, the programs' blocks up to +89
#: (the webhook dispatchers at +70..+89).
PORT_SPAN = 90
#: One cluster at a time on this machine, whichever xdist worker runs it (2 cores).
LOCK = Path("/tmp/logistics-cluster-tests.lock")
JWT_SECRET = "cluster-test-secret-0123456789-abcdefghijklmnop"
SECRETS_KEY = (
    "Jie2iDKjh-9v_B3Lrtw9kWdXidfOC0kD1vVr1Vvapdg="  # Fernet: stored secrets (carriers, webhook endpoints)
)
#: Routes that are not API traffic: probes and scrapes come from the balancers and the tests.
NOT_API = ("healthz", "readyz", "metrics")


def launcher() -> ModuleType:
    """deploy/local/cluster.py as a module: its Layout is the one description of the ports."""
    spec = importlib.util.spec_from_file_location("logistics_local_cluster", LAUNCHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_base_port() -> int:
    """A base port whose whole block (PORT_SPAN ports) is free on 127.0.0.1 right now."""
    return free_block(range(PORT_SPAN))


@contextlib.contextmanager
def machine_lock(timeout: float = 900) -> Iterator[None]:
    with LOCK.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another cluster test held {LOCK} for {timeout:.0f} s") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def metric_sum(text_: str, name: str, exclude_routes: tuple[str, ...] = ()) -> float:
    """The sum of every sample of the counter ``name`` (prometheus text format)."""
    total = 0.0
    for family in text_string_to_metric_families(text_):
        for sample in family.samples:
            if sample.name != name:
                continue
            route = sample.labels.get("route", "")
            if any(word in route for word in exclude_routes):
                continue
            total += sample.value
    return total


@dataclass
class Process:
    """One supervisord process: ``shipping-web:shipping-web-27020``."""

    program: str
    port: int

    @property
    def name(self) -> str:
        return f"{self.program}:{self.program}-{self.port}"


class Cluster:
    def __init__(self, directory: Path, pg_url: str, broker_url: str, redis_url: str) -> None:
        self.module = launcher()
        self.directory = directory
        self.tag = uuid.uuid4().hex[:8]
        self.namespace = f"lt_cl_{self.tag}"
        self.pg_url = pg_url.rstrip("/")
        self.broker_url = broker_url
        self.base = free_base_port()
        self.databases = {svc: f"lt_cl_{self.tag}_{svc}" for svc in ("inventory", "shipping", "support")}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGISTICS_", "PROMETHEUS_"))}
        self.env.update(
            LOGISTICS_CLUSTER_DIR=str(directory),
            LOGISTICS_CLUSTER_BASE_PORT=str(self.base),
            # A killed replica stays dead until the test starts it again.
            LOGISTICS_CLUSTER_AUTORESTART="false",
            LOGISTICS_BROKER_URL=broker_url,
            LOGISTICS_REDIS_URL=redis_url,
            LOGISTICS_BUS_NAMESPACE=self.namespace,
            LOGISTICS_JWT_SECRET=JWT_SECRET,
            LOGISTICS_SECRETS_KEY=SECRETS_KEY,
            LOGISTICS_LOG_LEVEL="WARNING",
            LOGISTICS_ACCESS_LOG="false",
            # Load tests measure the replicas, not a budget: the rate limiter is off.
            LOGISTICS_RATE_LIMITS_ENABLED="false",
            # Enough connections for 2 processes x 2 replicas x 3 services next to the suite.
            LOGISTICS_DB_POOL_SIZE="4",
            LOGISTICS_DB_MAX_OVERFLOW="4",
        )
        self.env.update(
            {
                f"LOGISTICS_{svc.upper()}_DATABASE_URL": f"{self.pg_url}/{db}"
                for svc, db in self.databases.items()
            }
        )
        self.layout = self.module.Layout(self.env)
        self.engines: dict[str, Engine] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def _launch(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(LAUNCHER), command],
            env=self.env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> None:
        done = self._launch("up", timeout=300)
        if done.returncode != 0:
            raise AssertionError(
                f"deploy/local/cluster.py up failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                + self.logs_tail()
            )
        self.urls = done.stdout

    def down(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        done = self._launch("down", timeout=180)
        if done.returncode != 0:
            pid = self.supervisord_pid()
            if pid:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        self.drop_databases()
        self.delete_namespace()

    def drop_databases(self) -> None:
        with psycopg.connect(f"{self.pg_url}/postgres", autocommit=True) as conn:
            for db in self.databases.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def delete_namespace(self) -> None:
        names: list[str] = []
        kinds = {"list_queues": "queue", "list_exchanges": "exchange"}
        found: dict[str, list[str]] = {"queue": [], "exchange": []}
        for command, kind in kinds.items():
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                out = subprocess.run(
                    ["rabbitmqctl", "-q", command, "name"], capture_output=True, text=True, timeout=30
                ).stdout.split()
                found[kind] = [n for n in out if n.startswith(self.namespace + ".")]
                names += found[kind]
        with Connection(self.broker_url) as conn:
            channel = conn.channel()
            for name in found["queue"]:
                channel.queue_delete(name)
            for name in found["exchange"]:
                channel.exchange_delete(name)

    def supervisord_pid(self) -> int | None:
        try:
            return int((self.directory / "supervisord.pid").read_text())
        except (OSError, ValueError):
            return None

    def logs_tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted((self.directory / "logs").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(out)

    # -- addresses -----------------------------------------------------------------------------

    def front_door(self, balancer: str) -> str:
        port = {"nginx": self.layout.nginx, "haproxy": self.layout.haproxy}[balancer]
        return f"http://127.0.0.1:{port}"

    def web(self, svc: str) -> list[Process]:
        return [Process(f"{svc}-web", p) for p in self.layout.web_ports(svc)]

    def workers(self, svc: str) -> list[Process]:
        return [Process(f"{svc}-worker", p) for p in self.layout.worker_ports(svc)]

    def engine(self, svc: str) -> Engine:
        if svc not in self.engines:
            url = f"{self.pg_url}/{self.databases[svc]}".replace("postgresql://", "postgresql+psycopg://", 1)
            self.engines[svc] = create_engine(url, pool_size=2)
        return self.engines[svc]

    def scalar(self, svc: str, sql: str, **params: Any) -> Any:
        with self.engine(svc).connect() as conn:
            return conn.execute(text(sql), params).scalar_one()

    def rows(self, svc: str, sql: str, **params: Any) -> list[Any]:
        with self.engine(svc).connect() as conn:
            return list(conn.execute(text(sql), params).all())

    # -- processes -----------------------------------------------------------------------------

    def rpc(self) -> Any:
        """supervisord's XML-RPC interface on the cluster's unix socket."""
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(serverurl=f"unix://{self.directory / 'supervisor.sock'}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def info(self, process: Process) -> dict[str, Any]:
        """supervisord's view of one process: statename, pid, exitstatus, ..."""
        return self.rpc().getProcessInfo(process.name)

    def pid(self, process: Process) -> int:
        info = self.info(process)
        assert info["statename"] == "RUNNING" and info["pid"] > 0, f"{process.name}: {info}"
        return int(info["pid"])

    def kill(self, process: Process, sig: signal.Signals = signal.SIGKILL) -> float:
        """Send ``sig`` to the process's whole group (a gunicorn master and its workers, as a
        crash or an OOM kill of the container would); returns ``time.monotonic()`` at the kill."""
        pid = self.pid(process)
        at = time.monotonic()
        os.killpg(pid, sig)
        return at

    def terminate(self, process: Process) -> float:
        """SIGTERM to the process itself (gunicorn's master: a graceful stop)."""
        pid = self.pid(process)
        at = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        return at

    def state(self, process: Process) -> str:
        return str(self.info(process)["statename"])

    def wait_stopped(self, process: Process, timeout: float = 60) -> dict[str, Any]:
        """Until supervisord saw the process exit; its info then (``exitstatus``)."""
        wait_until(
            lambda: self.state(process) in {"EXITED", "STOPPED", "FATAL", "BACKOFF"},
            timeout,
            what=f"{process.name} to exit",
        )
        return self.info(process)

    def start(self, process: Process, timeout: float = 90) -> None:
        """Start a stopped or killed process again and wait until it answers /readyz."""
        if self.state(process) != "RUNNING":
            self.rpc().startProcess(process.name, False)
        wait_until(lambda: self.ready(process.port), timeout, what=f"{process.name} ready on :{process.port}")

    def ready(self, port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    # -- what each replica did -----------------------------------------------------------------

    def metrics(self, port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return response.read().decode()

    def api_requests(self, process: Process) -> float:
        return metric_sum(self.metrics(process.port), "logistics_http_requests_total", NOT_API)

    def consumed(self, process: Process) -> float:
        return metric_sum(self.metrics(process.port), "logistics_bus_consumed_total")

    def haproxy_servers(self) -> dict[tuple[str, str], dict[str, str]]:
        """HAProxy's stats CSV: (backend, server) -> its row."""
        url = f"http://127.0.0.1:{self.layout.haproxy_stats}/stats;csv"
        with urllib.request.urlopen(url, timeout=5) as response:
            lines = response.read().decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            rows[(row["pxname"], row["svname"])] = row
        return rows

    def haproxy_server(self, process: Process) -> tuple[str, str]:
        """The HAProxy (backend, server) of a web replica: its slot ``<svc><n>-1``."""
        svc = process.program.removesuffix("-web")
        n = self.layout.web_ports(svc).index(process.port) + 1
        return svc, f"{svc}{n}-1"

    def nginx_log(self) -> list[dict[str, Any]]:
        """nginx's JSON access log lines so far."""
        path = self.directory / "logs" / f"nginx-{self.layout.nginx}.log"
        entries = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))
        return entries

    def dead_letters(self) -> dict[str, int]:
        """Messages in each service's dead-letter queue."""
        counts = {}
        with Connection(self.broker_url) as conn:
            channel = conn.channel()
            for svc in self.databases:
                name = f"{self.namespace}.{svc}.dlq"
                try:
                    counts[svc] = channel.queue_declare(name, passive=True).message_count
                except Exception:
                    channel = conn.channel()
                    counts[svc] = 0
        return counts


def first_window(times: list[float], start: float, gap: float = 2.0) -> list[float]:
    """The attempts of ``times`` (after ``start``) up to the first pause longer than ``gap``:
    the requests a balancer sent to a dead replica before it routed around it (later ones are
    its periodic probes, nginx's after fail_timeout)."""
    window: list[float] = []
    for t in sorted(t for t in times if t >= start):
        if window and t - window[-1] > gap:
            break
        window.append(t)
    return window


class DeadReplicaWatch:
    """What a balancer did with a replica from the moment it was killed: the attempts it sent
    there and how long until it stopped (nginx: its access log; HAProxy: its stats, polled
    every 20 ms until the server is DOWN)."""

    def __init__(self, cluster: Cluster, balancer: str, process: Process) -> None:
        self.cluster, self.balancer, self.process = cluster, balancer, process
        self.killed_wall = 0.0
        self.killed = 0.0
        self.down_after: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._before: dict[str, str] = {}
        if balancer == "haproxy":
            self._before = cluster.haproxy_servers()[cluster.haproxy_server(process)]

    def kill(self) -> None:
        self.killed_wall = time.time()
        self.killed = self.cluster.kill(self.process)
        if self.balancer == "haproxy":
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        key = self.cluster.haproxy_server(self.process)
        while not self._stop.is_set():
            status = self.cluster.haproxy_servers()[key]["status"]
            if status.startswith("DOWN"):
                self.down_after = time.monotonic() - self.killed
                return
            time.sleep(0.02)

    def report(self) -> tuple[int, float | None, str]:
        """(attempts on the dead replica, seconds to route around it, how that was measured)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.balancer == "haproxy":
            after = self.cluster.haproxy_servers()[self.cluster.haproxy_server(self.process)]
            counters = ("econ", "eresp", "wretr", "wredis")
            attempts = sum(int(after[c] or 0) - int(self._before.get(c) or 0) for c in counters)
            return attempts, self.down_after, "HAProxy stats: econ+eresp+wretr+wredis; until status DOWN"
        address = f"127.0.0.1:{self.process.port}"
        times = [
            float(entry["msec"])
            for entry in self.cluster.nginx_log()
            for tried in str(entry.get("upstream", "")).split(", ")
            if tried == address
        ]
        window = first_window(times, self.killed_wall)
        later = len([t for t in times if t >= self.killed_wall]) - len(window)
        seconds = (window[-1] - self.killed_wall) if window else 0.0
        return (
            len(window),
            seconds,
            f"nginx access log: tries on {address} until the first 2 s pause ({later} later probes)",
        )


def need_cluster_tools() -> None:
    """nginx, HAProxy (Debian's, as .ci/run installs them) and supervisord (requirements-dev):
    skip without them, or fail under LOGISTICS_REQUIRE_SERVICES=1."""
    import shutil

    import pytest

    from ..services import services_required

    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    missing = [tool for tool in ("nginx", "haproxy") if shutil.which(tool, path=path) is None]
    if not (Path(sys.executable).parent / "supervisord").exists():
        missing.append("supervisord (pip: supervisor, in requirements-dev.txt)")
    if missing:
        message = f"the local cluster needs {', '.join(missing)} (apt-get install nginx haproxy)"
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)

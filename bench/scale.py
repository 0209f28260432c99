"""Scale-out: throughput and CPU-seconds per 1,000 requests at 1, 2 and 3 inventory web replicas
of 1 or 2 gunicorn processes each, behind nginx, all in one run; ratios to 1 replica x 1 process.

    .venv/bin/python bench/scale.py [--rounds 3] [--duration 10] [--warmup 2] [--connections 16]
                                    [--threads 2] [--replicas 1,2,3] [--processes 1,2]
                                    [--base-port 7600] [--max-requests N] [--quick]

The cluster. One local cluster (``deploy/local/cluster.py up``, supervisord, the deployment's
nginx template) with as many web replicas and gunicorn processes as the largest configuration
needs, 1 worker per service, its own temp directory, ports from ``--base-port`` (7600: nginx
7600, inventory replicas 7610..), databases ``bench_scale_<svc>`` (dropped first and at the
end), a bus namespace ``benchscale<hex>``, the bench JWT secret, quiet logs, and supervisord's
autorestart off (a replica that dies stays dead and its row shows the errors). Seeded through
nginx like bench/http.py: 1 warehouse, 50 items, 1000 units each.

The configurations are switched on that running cluster, because a bring-up takes 25-75 s here
(18 of them would be the whole time budget, and rounds could not be interleaved cheaply):

* replicas: nginx's config is rendered again from the same template by deploy/render.sh, with
  supervisord's own environment and only ``LOGISTICS_LB_INVENTORY_SERVERS`` cut to the first r
  replicas, checked with ``nginx -t`` and reloaded (SIGHUP: new workers, the old ones finish).
  nginx never sees a dead replica, so no passive-health failures or retries distort a row (as
  stopping replicas would). The other replicas stay up, idle: only HAProxy's active checks
  (every 2 s) reach them. They are not counted, and a row where one served the measured route
  is marked SUSPECT.
* processes: gunicorn's own TTIN/TTOU signals to each active replica's master (one worker more
  or fewer), then a wait until the master has exactly p workers for 1 s. That is what
  ``--workers p`` gives: the same preloaded app, sync workers, the same max_requests recycling.

A row: a discarded ``--warmup`` wrk run, then ``GET /v1/stock?warehouse=BENCH&sku=BENCH-001``
with wrk through nginx's port for ``--duration`` s. CPU is read from /proc right before and
right after the measured wrk run only:

* web: the process trees of the active replicas (gunicorn master + workers): utime+stime of
  the live processes plus cutime+cstime of the reaped ones, so a worker that gunicorn recycled
  mid-run (``max_requests``, default 1000 + jitter) is counted whole; a tree is read again if a
  child was forked or reaped while it was being read;
* nginx: its master's tree; supervisord: its own CPU (it copies every program's stdout to the
  log files: nginx's JSON access log is one line per request; a cost of the local cluster, not
  of a replica);
* PostgreSQL: the backends connected to the bench databases (children of the postmaster, by
  process title), sampled every 100 ms; a backend that exits loses its last <= 100 ms, so this
  is a lower bound;
* wrk + bench (this process, the sampler), the rest of the cluster (shipping and support
  replicas, workers, HAProxy), and "others": the machine's busy CPU minus all of the above,
  i.e. whatever else ran on the machine (a test suite, say). A large "others" makes a row noisy.

CPU-s/1000 is a group's CPU-seconds divided by wrk's completed requests, x 1000. The requests
each replica served come from its /metrics (``logistics_http_requests_total``, GET /v1/stock)
before and after; their sum must match wrk's count (else SUSPECT).

Fairness: every round runs every configuration once, in an order rotated by one per round.
Ratios are taken inside a round (a configuration / the baseline of the same round) and printed
as median [min-max] over the rounds, with the medians of throughput, CPU-s/1000, p50/p99 and
errors. The verdict line compares 2 processes / 1 process at each replica count (targets on 2
cores: throughput >= 1.5, CPU per request <= 1.05); nothing asserts. wrk, nginx and PostgreSQL
run on the same 2 cores as the replicas, so more processes than free cores cannot add
throughput, only contention: read the ratios together with "others" and the load average.

While it runs the script holds /tmp/logistics-cluster-tests.lock (the cluster tests' lock, so
that no cluster test kills replicas in the middle of a row; waits up to ``--lock-wait`` s, then
runs without it and says so). At the end, also on errors, Ctrl-C or SIGTERM (exit status 130),
the cluster is stopped (``cluster.py down``), the databases dropped and the namespace's queues
and exchanges deleted. Exit status 1 means a row had errors or was suspect.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which urllib imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import contextlib
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
import xmlrpc.client
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
from kit import core, facts
from kit.broker import broker_version, safely_delete_namespace
from kit.core import BROKER_URL, INITIAL_STOCK, PG_URL, REPO, SKUS, WAREHOUSE, stoppable_main
from kit.cpu import machine_cpu
from kit.databases import databases, postgres_facts
from kit.local_cluster import LOCK, LocalCluster, cluster_tests_lock, launcher, wait_until
from kit.wrk import Wrk, WrkResult, WrkSettings, ensure_wrk, failure

RENDER = REPO / "deploy" / "render.sh"
NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "nginx.conf.template"
#: The cluster tests' lock (tests/helpers/cluster.py): one cluster at a time on this machine.
DATABASE_PREFIX = "bench_scale_"
ROUTE = "/v1/stock"
SKU = SKUS[0]
PATH = f"{ROUTE}?warehouse={WAREHOUSE}&sku={SKU}"
TICK = os.sysconf("SC_CLK_TCK")
PG_SAMPLE_SECONDS = 0.1
QUICK = {"rounds": 1, "duration": 3, "warmup": 1, "replicas": (1, 2), "processes": (1, 2)}
#: --quick measures these only: both kinds of switch (processes, then replicas) in 3 rows.
QUICK_CONFIGS = ((1, 1), (1, 2), (2, 2))
#: The CPU groups of a row, in the order of the "where the CPU went" table.
GROUPS = ("web", "idle web", "nginx", "PostgreSQL", "supervisord", "rest of cluster", "wrk+bench")
TARGET_THROUGHPUT, TARGET_CPU = 1.5, 1.05


# -- CPU of process trees, from /proc --------------------------------------------------------------


def _stat(pid: int) -> tuple[float, float] | None:
    """(own, reaped children's) user+system CPU seconds of ``pid``; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            raw = stat.read()
        fields = raw[raw.rindex(")") + 1 :].split()
        return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK
    except (OSError, ValueError, IndexError):
        return None


def children(pid: int) -> set[int]:
    """The live (or not yet reaped) children of ``pid``, from every one of its threads."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as listing:
                found.update(int(child) for child in listing.read().split())
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants, those alive and those reaped.

    A live child counts its own time (and its descendants'); a reaped one is in its parent's
    cutime+cstime. A child reaped or forked between reading the parent and reading the child
    would be counted twice or not at all, so the parent is read again, until it did not change.
    """
    total = 0.0
    for _ in range(20):
        before = _stat(pid)
        if before is None:
            return total
        kids = children(pid)
        below = sum(tree_cpu(kid) for kid in kids)
        after = _stat(pid)
        if after is None:
            return total
        total = after[0] + after[1] + below
        if after[1] == before[1] and children(pid) == kids:
            break
    return total


def own_cpu(pid: int) -> float:
    stat = _stat(pid)
    return stat[0] if stat else 0.0


class BackendMeter:
    """CPU of the PostgreSQL backends connected to the bench databases, over a window.

    The backends are children of the postmaster whose process title names one of
    ``databases``; a thread reads their CPU every ``PG_SAMPLE_SECONDS``. A backend that starts
    during the window counts from 0, one that exits keeps its last sample (a lower bound).
    """

    def __init__(self, pg_url: str, names: tuple[str, ...]) -> None:
        self.names = names
        self.postmaster = self._postmaster(pg_url)
        self.ours: set[int] = set()
        self.others: set[int] = set()
        self.last: dict[int, float] = {}
        self.base: dict[int, float] = {}
        self.finished = 0.0
        self.window = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.postmaster is not None:
            self._thread = threading.Thread(target=self._run, name="pg-backend-cpu", daemon=True)
            self._thread.start()

    @staticmethod
    def _postmaster(pg_url: str) -> int | None:
        """The server's postmaster, if it runs on this machine (the parent of our own backend)."""
        try:
            with psycopg.connect(f"{pg_url.rstrip('/')}/postgres", connect_timeout=5) as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
            with open(f"/proc/{row[0] if row else 0}/stat") as stat:
                raw = stat.read()
            return int(raw[raw.rindex(")") + 1 :].split()[1])
        except (OSError, ValueError, IndexError, psycopg.Error):
            return None

    @property
    def available(self) -> bool:
        return self.postmaster is not None

    def _run(self) -> None:
        while not self._stop.wait(PG_SAMPLE_SECONDS):
            self.poll()

    def _classify(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                title = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return
        if any(f" {name} " in title for name in self.names):
            self.ours.add(pid)
        elif title.startswith("postgres: "):
            # A titled process of another database, or a background process. An untitled one
            # (just forked, still the postmaster's command line) is looked at again next time.
            self.others.add(pid)

    def poll(self) -> None:
        assert self.postmaster is not None
        with self._lock:
            alive = children(self.postmaster)
            for pid in alive - self.ours - self.others:
                self._classify(pid)
            for pid in self.ours & alive:
                cpu = _stat(pid)
                if cpu is not None:
                    self.last[pid] = cpu[0]
            for pid in self.ours - alive:
                if self.window:
                    self.finished += self.last.get(pid, 0.0) - self.base.get(pid, 0.0)
                self.ours.discard(pid)
                self.last.pop(pid, None)
                self.base.pop(pid, None)
            self.others &= alive

    def start(self) -> None:
        if not self.available:
            return
        self.poll()
        with self._lock:
            self.base = dict(self.last)
            self.finished = 0.0
            self.window = True

    def stop(self) -> float | None:
        if not self.available:
            return None
        self.poll()
        with self._lock:
            self.window = False
            return self.finished + sum(cpu - self.base.get(pid, 0.0) for pid, cpu in self.last.items())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


# -- the cluster -------------------------------------------------------------------------------


def nginx_executable() -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which("nginx", path=path)
    if not found:
        raise SystemExit("nginx is not installed (apt-get install nginx haproxy)")
    return found


class Cluster(LocalCluster):
    """The local cluster of this run, and the two switches: nginx's replicas, gunicorn's processes."""

    def __init__(
        self, args: argparse.Namespace, directory: Path, urls: dict[str, str], namespace: str
    ) -> None:
        self.nginx = nginx_executable()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGISTICS_", "PROMETHEUS_"))}
        env.update(
            LOGISTICS_CLUSTER_DIR=str(directory),
            LOGISTICS_CLUSTER_BASE_PORT=str(args.base_port),
            LOGISTICS_CLUSTER_WEB_REPLICAS=str(max(r for r, _ in args.configs)),
            LOGISTICS_CLUSTER_WEB_PROCESSES=str(max(p for _, p in args.configs)),
            LOGISTICS_CLUSTER_WORKER_REPLICAS="1",
            # A replica that dies stays dead: its row shows the errors instead of hiding them.
            LOGISTICS_CLUSTER_AUTORESTART="false",
            LOGISTICS_BROKER_URL=args.broker_url,
            LOGISTICS_REDIS_URL=args.redis_url,
            LOGISTICS_BUS_NAMESPACE=namespace,
            LOGISTICS_JWT_SECRET=core.JWT_SECRET,
            LOGISTICS_SECRETS_KEY=core.SECRETS_KEY,
            LOGISTICS_LOG_LEVEL="WARNING",
            LOGISTICS_ACCESS_LOG="false",
            # A throughput bench: the rate limiter is off (bench/ratelimit.py measures it).
            LOGISTICS_RATE_LIMITS_ENABLED="false",
            # A sync worker needs one connection; 3 services x replicas x processes next to a
            # test suite must fit PostgreSQL's max_connections (as tests/helpers/cluster.py).
            LOGISTICS_DB_POOL_SIZE="4",
            LOGISTICS_DB_MAX_OVERFLOW="4",
        )
        env.update({f"LOGISTICS_{svc.upper()}_DATABASE_URL": url for svc, url in urls.items()})
        if args.max_requests is not None:
            env["LOGISTICS_WEB_MAX_REQUESTS"] = str(args.max_requests)
        super().__init__(env, directory)
        self.directory: Path = directory
        self.ports: list[int] = self.layout.web_ports("inventory")
        self.processes = dict.fromkeys(self.ports, int(self.env["LOGISTICS_CLUSTER_WEB_PROCESSES"]))
        self.upstream = len(self.ports)

    def kill_survivor(self, pid: int) -> None:
        """supervisord's programs each lead a process group of their own: kill those, then it."""
        with contextlib.suppress(Exception):
            for info in self.rpc().getAllProcessInfo():
                if info["pid"]:
                    with contextlib.suppress(OSError):
                        os.killpg(info["pid"], signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    def rpc(self) -> Any:
        """supervisord's XML-RPC interface on the cluster's unix socket."""
        from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

        transport = SupervisorTransport(serverurl=f"unix://{self.directory / 'supervisor.sock'}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def pids(self) -> dict[str, int]:
        """``program:process`` -> pid of every process, which must all be RUNNING."""
        found, down = {}, []
        for info in self.rpc().getAllProcessInfo():
            name = f"{info['group']}:{info['name']}"
            if info["statename"] != "RUNNING":
                down.append(f"{name} {info['statename']}")
            found[name] = int(info["pid"])
        if down:
            raise SystemExit("cluster processes not running: " + ", ".join(down) + self.logs_tail())
        return found

    @staticmethod
    def web_name(port: int) -> str:
        return f"inventory-web:inventory-web-{port}"

    @property
    def nginx_name(self) -> str:
        return f"nginx:nginx-{self.layout.nginx}"

    def route_to(self, replicas: int) -> None:
        """nginx's inventory upstream = the first ``replicas`` replicas: render, test, reload."""
        if replicas == self.upstream:
            return
        supervisord = self.supervisord_pid()
        assert supervisord is not None
        # The environment the cluster rendered its config with (supervisord's), one list changed.
        raw = Path(f"/proc/{supervisord}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        env["LOGISTICS_LB_INVENTORY_SERVERS"] = " ".join(f"127.0.0.1:{p}" for p in self.ports[:replicas])
        conf = self.directory / "nginx.conf"
        for argv in (
            ["sh", str(RENDER), str(NGINX_TEMPLATE), str(conf)],
            [self.nginx, "-t", "-q", "-e", "stderr", "-p", str(self.directory), "-c", str(conf)],
        ):
            done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
        master = self.pids()[self.nginx_name]
        old = children(master)
        os.kill(master, signal.SIGHUP)
        wait_until(lambda: bool(kids := children(master)) and not kids & old, 30, "nginx to reload")
        self.upstream = replicas

    def set_processes(self, port: int, count: int) -> None:
        """gunicorn's TTIN (one worker more) or TTOU (one fewer) until the replica has ``count``."""
        current = self.processes[port]
        if count == current:
            return
        master = self.pids()[self.web_name(port)]
        for _ in range(abs(count - current)):
            os.kill(master, signal.SIGTTIN if count > current else signal.SIGTTOU)
            time.sleep(0.2)
        stable_since = [0.0]

        def settled() -> bool:
            if len(children(master)) != count:
                stable_since[0] = 0.0
                return False
            stable_since[0] = stable_since[0] or time.monotonic()
            return time.monotonic() - stable_since[0] >= 1.0

        wait_until(settled, 30, f"inventory replica :{port} to run {count} gunicorn workers")
        self.processes[port] = count

    def served(self, port: int) -> float:
        """GET /v1/stock requests the replica has answered so far (all its workers, its /metrics)."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "logistics_http_requests_total"
            and sample.labels.get("route") == ROUTE
            and sample.labels.get("method") == "GET"
        )


# -- one row -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float
    busy: float
    cpu: dict[str, float]
    workers: dict[int, set[int]]


def sample(cluster: Cluster, pids: dict[str, int], active: list[int]) -> Sample:
    web = {cluster.web_name(port) for port in active}
    skip = {*web, *(cluster.web_name(port) for port in cluster.ports), cluster.nginx_name}
    supervisord = cluster.supervisord_pid() or 0
    wrk = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = os.times()
    cpu = {
        "web": sum(tree_cpu(pids[name]) for name in web),
        "idle web": sum(tree_cpu(pids[cluster.web_name(p)]) for p in cluster.ports if p not in active),
        "nginx": tree_cpu(pids[cluster.nginx_name]),
        "supervisord": own_cpu(supervisord),
        "rest of cluster": sum(tree_cpu(pid) for name, pid in pids.items() if name not in skip),
        "wrk+bench": wrk.ru_utime + wrk.ru_stime + own.user + own.system,
    }
    workers = {port: children(pids[cluster.web_name(port)]) for port in active}
    return Sample(time.monotonic(), machine_cpu()[0], cpu, workers)


@dataclass
class Row:
    round: int
    replicas: int
    processes: int
    result: WrkResult
    wall: float
    busy: float
    cpu: dict[str, float]
    served: list[float]
    boots: int
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> str:
        return f"{self.replicas}x{self.processes}"

    def per_1000(self, group: str) -> float:
        value = self.cpu.get(group, float("nan"))
        return 1000 * value / self.result.requests if self.result.requests else float("nan")

    @property
    def path_per_1000(self) -> float:
        """web + nginx + PostgreSQL: the CPU the request path itself costs."""
        return sum(self.per_1000(group) for group in ("web", "nginx", "PostgreSQL"))

    @property
    def errors(self) -> int:
        return self.result.non_2xx + sum(self.result.socket_errors.values())

    @property
    def busy_share(self) -> float:
        """The machine's busy CPU during the row, as a share of all its cores."""
        return self.busy / (self.wall * (os.cpu_count() or 1))

    @property
    def others(self) -> float:
        """CPU-seconds busy on the machine that nothing of this run accounts for."""
        accounted = sum(v for v in self.cpu.values() if v == v)  # NaN (no PostgreSQL reading) left out
        return max(0.0, self.busy - accounted)

    @property
    def others_share(self) -> float:
        """The busy CPU nothing of this run accounts for, as a share of the machine."""
        return self.others / (self.wall * (os.cpu_count() or 1))


def smoke_test(url: str, token: str) -> None:
    status, body = core.http_json("GET", url, token=token)
    items = body.get("items") if isinstance(body, dict) else None
    if status != 200 or not items or items[0]["sku"] != SKU or items[0]["on_hand"] != INITIAL_STOCK:
        raise SystemExit(f"GET {url} answered {status}: {body}")


def measure(
    cluster: Cluster,
    pg: BackendMeter,
    wrk: Wrk,
    warm: Wrk | None,
    token: str,
    round_: int,
    replicas: int,
    processes: int,
) -> Row:
    cluster.route_to(replicas)
    active = cluster.ports[:replicas]
    for port in active:
        cluster.set_processes(port, processes)
    url = cluster.front_door + PATH
    smoke_test(url, token)
    name = f"round {round_} {replicas}x{processes}"
    auth = (f"Authorization: Bearer {token}",)
    if warm is not None:
        warm.measure(f"{name} warm-up", url, headers=auth)
    pids = cluster.pids()
    before = [cluster.served(port) for port in cluster.ports]
    pg.start()
    start = sample(cluster, pids, active)
    result = wrk.measure(name, url, headers=auth)
    end = sample(cluster, pids, active)
    pg_cpu = pg.stop()
    after = [cluster.served(port) for port in cluster.ports]
    if cluster.pids() != pids:
        raise SystemExit(f"{name}: a cluster process was replaced during the row{cluster.logs_tail()}")
    cpu = {group: end.cpu[group] - start.cpu[group] for group in start.cpu}
    cpu["PostgreSQL"] = pg_cpu if pg_cpu is not None else float("nan")
    served = [b - a for a, b in zip(before, after, strict=True)]
    row = Row(
        round_,
        replicas,
        processes,
        result,
        wall=end.wall - start.wall,
        busy=end.busy - start.busy,
        cpu=cpu,
        served=served[:replicas],
        boots=sum(len(end.workers[port] - start.workers[port]) for port in active),
    )
    idle = sum(served[replicas:])
    if idle:
        row.notes.append(
            f"!!! {name}: idle replicas served {idle:.0f} {ROUTE} requests (nginx not reloaded?)"
        )
    counted = sum(row.served)
    if abs(counted - result.requests) > wrk.settings.connections + 0.01 * result.requests:
        row.notes.append(
            f"!!! {name}: the replicas' /metrics count {counted:.0f} requests, wrk {result.requests}"
        )
    print(
        f"  {name}: {result.requests_per_s:.0f} req/s, web {row.per_1000('web'):.2f} CPU-s/1000, "
        f"errors {row.errors}, others {100 * row.others_share:.0f}% of the machine",
        file=sys.stderr,
    )
    return row


# -- the run -------------------------------------------------------------------------------------


def ignore_interrupts() -> None:
    """From here on, Ctrl-C and SIGTERM cannot cut the teardown short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def wait_outbox_drained(database_url: str, timeout: float = 60) -> None:
    """The seed's receipts wrote outbox rows: let the worker's relay publish them before any row."""

    def drained() -> bool:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
        return row is not None and row[0] == 0

    try:
        wait_until(drained, timeout, "the inventory outbox to drain", interval=0.5)
    except (SystemExit, psycopg.Error) as exc:
        print(f"warning: {exc}; measuring anyway", file=sys.stderr)


def gunicorn_facts(env: dict[str, str]) -> str:
    from logistics_shared.settings import load_settings

    try:
        settings = load_settings("inventory", {}, environ=env)
    except Exception as exc:
        return f"(settings unreadable: {exc})"
    kind = "sync workers" if settings.web_threads == 1 else f"gthread, {settings.web_threads} threads"
    if settings.web_max_requests:
        recycling = (
            f"max_requests {settings.web_max_requests} + jitter {settings.web_max_requests_jitter}"
            " (a worker is replaced after that many requests)"
        )
    else:
        recycling = "max_requests 0 (workers are never replaced)"
    return f"gunicorn {version('gunicorn')}, {kind}, preload, {recycling}"


def nginx_version(executable: str) -> str:
    done = subprocess.run([executable, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


def run(args: argparse.Namespace) -> tuple[str, bool]:
    wrk = Wrk(
        ensure_wrk(), WrkSettings(args.threads, args.connections, args.duration, 0, "postgres", args.pg_url)
    )
    warm = (
        Wrk(
            wrk.executable,
            WrkSettings(args.threads, args.connections, args.warmup, 0, "postgres", args.pg_url),
        )
        if args.warmup
        else None
    )
    start_facts = facts.machine()
    namespace = f"benchscale{uuid.uuid4().hex[:8]}"
    module = launcher()
    names = {svc: f"{DATABASE_PREFIX}{svc}" for svc in module.services()}
    info: list[tuple[str, str]] = [
        (
            "software",
            facts.software(wrk.version(), nginx_version(nginx_executable()), facts.libraries("supervisor")),
        ),
        ("database", postgres_facts(args.pg_url)),
        ("broker", f"{broker_version(args.broker_url)} (the workers only: a read never touches it)"),
    ]
    rows: list[Row] = []
    with (
        cluster_tests_lock(args.lock_wait) as locked,
        tempfile.TemporaryDirectory(prefix="bench-scale-", ignore_cleanup_errors=True) as tmp,
        databases(args.pg_url, names) as urls,
    ):
        cluster = Cluster(args, Path(tmp), urls, namespace)
        pg = BackendMeter(args.pg_url, tuple(names.values()))
        try:
            print(
                f"bringing the cluster up: {', '.join(names)} x {cluster.upstream} web replicas x "
                f"{cluster.env['LOGISTICS_CLUSTER_WEB_PROCESSES']} processes, 1 worker each, "
                f"nginx on :{cluster.layout.nginx} ...",
                file=sys.stderr,
            )
            seconds = cluster.up()
            token = core.admin_token(cluster.env)
            print(f"cluster up in {seconds:.0f} s; seeding through nginx ...", file=sys.stderr)
            core.seed(core.http_seeder(cluster.front_door, token))
            smoke_test(cluster.front_door + PATH, token)
            wait_outbox_drained(urls["inventory"])
            info += [
                (
                    "cluster",
                    f"deploy/local/cluster.py, {len(names)} services x {cluster.upstream} web replicas x "
                    f"{cluster.env['LOGISTICS_CLUSTER_WEB_PROCESSES']} processes, 1 worker each "
                    f"(up in {seconds:.0f} s); nginx :{cluster.layout.nginx}, inventory replicas "
                    f"{', '.join(f':{p}' for p in cluster.ports)}",
                ),
                ("gunicorn", gunicorn_facts(cluster.env)),
            ]
            for round_ in range(1, args.rounds + 1):
                shift = (round_ - 1) % len(args.configs)
                for replicas, processes in (*args.configs[shift:], *args.configs[:shift]):
                    rows.append(measure(cluster, pg, wrk, warm, token, round_, replicas, processes))
        finally:
            ignore_interrupts()
            pg.close()
            cluster.down()
            safely_delete_namespace(args.broker_url, namespace)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    info += [
        (
            "wrk load",
            f"{wrk.settings.wrk_threads} threads · {args.connections} connections · {args.duration}s "
            f"(after a {args.warmup}s warm-up) · every row, through nginx",
        ),
        ("request", f"GET {PATH} (admin token; every request reads the database)"),
        (
            "rounds",
            f"{args.rounds}, each configuration once per round, order rotated by one per round"
            + (" (--quick)" if args.quick else ""),
        ),
        (
            "PostgreSQL CPU",
            f"backends of the bench databases, sampled every {PG_SAMPLE_SECONDS * 1000:.0f} ms"
            " (a lower bound)"
            if pg.available
            else "n/a (the server does not run on this machine)",
        ),
        (
            "cluster tests' lock",
            "held for the whole run" if locked else f"NOT held: a cluster test may have run ({LOCK})",
        ),
    ]
    report, failed = render(
        rows, [*start_facts, *info, ("load average", f"{facts.load_average()} (at end)")], args
    )
    return report, failed


# -- the report ----------------------------------------------------------------------------------


def _median_range(values: list[float], fmt: str) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    middle = format(statistics.median(values), fmt)
    if len(values) == 1:
        return middle
    return f"{middle} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def ratios(
    rows: list[Row], config: tuple[int, int], base: tuple[int, int]
) -> tuple[list[float], list[float]]:
    """Per round: (throughput, web CPU per request) of ``config`` / those of ``base`` in that round."""
    by = {(row.round, row.replicas, row.processes): row for row in rows}
    throughput, cpu = [], []
    for round_ in sorted({row.round for row in rows}):
        a, b = by.get((round_, *config)), by.get((round_, *base))
        if a is None or b is None or not b.result.requests_per_s:
            continue
        throughput.append(a.result.requests_per_s / b.result.requests_per_s)
        cpu.append(a.per_1000("web") / b.per_1000("web"))
    return throughput, cpu


def load_warnings(rows: list[tuple[str, str]]) -> list[str]:
    cores = os.cpu_count() or 1
    out = []
    for key, value in rows:
        if key == "load average":
            first = float(value.split()[0])
            if first > cores:
                out.append(
                    f"  !!! load average {first:.2f} > {cores} cores {value.split(None, 3)[-1]}:"
                    " the machine was busy, the figures are noisy"
                )
    return out


def render(
    rows: list[Row], machine_facts: list[tuple[str, str]], args: argparse.Namespace
) -> tuple[str, bool]:
    base = args.configs[0]
    title = (
        "Scale-out benchmark: inventory GET /v1/stock through nginx, "
        "web replicas x gunicorn processes, ratios to " + f"{base[0]}x{base[1]}"
    )
    lines = ["", title, ""]
    lines += facts.lines(machine_facts, 19)
    lines += load_warnings(machine_facts)

    top = (
        f"{'round':<5} {'config':<6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'web':>6} {'nginx':>6} {'PG':>6} {'superv':>6} {'boots':>5} {'busy%':>5} {'others%':>7}"
        "  per replica"
    )
    lines += [
        "",
        "Every row (CPU columns: CPU-seconds per 1,000 requests; boots: gunicorn workers started)",
        "",
    ]
    lines += [top, "-" * len(top)]
    for row in sorted(rows, key=lambda r: (r.round, r.replicas, r.processes)):
        served = sum(row.served) or 1
        shares = "/".join(f"{100 * s / served:.0f}" for s in row.served) + "%"
        lines.append(
            f"{row.round:<5} {row.config:<6} {row.result.requests_per_s:>8.1f} {row.result.p50_ms:>7.2f} "
            f"{row.result.p99_ms:>7.2f} {row.errors:>6} {row.per_1000('web'):>6.2f} "
            f"{row.per_1000('nginx'):>6.2f} {row.per_1000('PostgreSQL'):>6.2f} "
            f"{row.per_1000('supervisord'):>6.2f} {row.boots:>5} {100 * row.busy_share:>5.0f} "
            f"{100 * row.others_share:>7.0f}  {shares}"
            + ("   <-- ERRORS" if row.result.failed else "")
            + ("   <-- SUSPECT" if row.notes else "")
        )

    summary = (
        f"{'config':<6} {'req/s':>22} {'web CPU-s/1000':>20} {'+nginx+PG':>20} {'p50 ms':>21} "
        f"{'p99 ms':>23} {'errors':>6} {'x req/s':>18} {'x CPU/req':>18}"
    )
    lines += [
        "",
        f"Medians [min-max] over {args.rounds} round(s); x: ratio to {base[0]}x{base[1]} in the same round",
        "",
    ]
    lines += [summary, "-" * len(summary)]
    for config in args.configs:
        group = [row for row in rows if (row.replicas, row.processes) == config]
        if not group:
            continue
        throughput, cpu = ratios(rows, config, base)
        lines.append(
            f"{group[0].config:<6} {_median_range([r.result.requests_per_s for r in group], '.1f'):>22} "
            f"{_median_range([r.per_1000('web') for r in group], '.3f'):>20} "
            f"{_median_range([r.path_per_1000 for r in group], '.3f'):>20} "
            f"{_median_range([r.result.p50_ms for r in group], '.2f'):>21} "
            f"{_median_range([r.result.p99_ms for r in group], '.1f'):>23} "
            f"{sum(r.errors for r in group):>6} {_median_range(throughput, '.2f'):>18} "
            f"{_median_range(cpu, '.2f'):>18}"
        )

    cpu_top = f"{'config':<6} " + " ".join(f"{g:>15}" for g in (*GROUPS, "others"))
    lines += [
        "",
        "Where the CPU went (median CPU-seconds per 1,000 requests; others: the rest of the machine)",
        "",
    ]
    lines += [cpu_top, "-" * len(cpu_top)]
    for config in args.configs:
        group = [row for row in rows if (row.replicas, row.processes) == config]
        if not group:
            continue
        cells = [statistics.median([r.per_1000(g) for r in group]) for g in GROUPS]
        others = statistics.median([1000 * r.others / r.result.requests for r in group])
        lines.append(f"{group[0].config:<6} " + " ".join(f"{c:>15.3f}" for c in (*cells, others)))

    lines += [""]
    lines += verdicts(rows, args)
    failed_rows = [row.result for row in rows if row.result.failed]
    notes = [note for row in rows for note in row.notes]
    if failed_rows or notes:
        width = len(summary)
        lines += ["", "!" * width, *(failure(r) for r in failed_rows), *notes]
        lines += [
            "!!! these rows measured failures or a wrong routing: their numbers are NOT valid",
            "!" * width,
        ]
    lines.append("")
    return "\n".join(lines), bool(failed_rows or notes)


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def verdicts(rows: list[Row], args: argparse.Namespace) -> list[str]:
    out = []
    for replicas in sorted({r for r, _ in args.configs}):
        if (replicas, 1) not in args.configs or (replicas, 2) not in args.configs:
            continue
        throughput, cpu = ratios(rows, (replicas, 2), (replicas, 1))
        if not throughput:
            continue
        t, c = statistics.median(throughput), statistics.median(cpu)
        out.append(
            f"verdict, {replicas} replica{'s' if replicas > 1 else ''}: 2 processes / 1 process: "
            f"throughput x{t:.2f} (target >= {TARGET_THROUGHPUT}: {met(t >= TARGET_THROUGHPUT)}) · "
            f"CPU per request x{c:.2f} (target <= {TARGET_CPU}: {met(c <= TARGET_CPU)})"
        )
    base = args.configs[0]
    spread = [
        statistics.median(ratios(rows, config, base)[1])
        for config in args.configs[1:]
        if ratios(rows, config, base)[1]
    ]
    if spread:
        out.append(
            f"CPU per request of every configuration / {base[0]}x{base[1]}: "
            f"x{min(spread):.2f} to x{max(spread):.2f} (flat is x1.00)"
        )
    return out


# -- the command line --------------------------------------------------------------------------


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of numbers") from None
    if not values or min(values) < 1 or max(values) > 9:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers from 1 to 9")
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every configuration; default 3")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measured run; default 10")
    parser.add_argument(
        "--warmup", type=int, default=None, help="discarded seconds before each run; default 2"
    )
    parser.add_argument("--connections", type=int, default=16, help="open wrk connections; default 16")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads; default 2")
    parser.add_argument(
        "--replicas", type=_counts, default=None, help="web replicas to measure; default 1,2,3"
    )
    parser.add_argument(
        "--processes", type=_counts, default=None, help="gunicorn processes per replica; default 1,2"
    )
    parser.add_argument("--base-port", type=int, default=7600, help="the cluster's base port; default 7600")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="LOGISTICS_WEB_MAX_REQUESTS for the replicas (0: never recycle); default: the service's",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 3 s, rows 1x1, 1x2, 2x2")
    parser.add_argument(
        "--lock-wait", type=float, default=600, help="seconds to wait for the cluster tests' lock"
    )
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server; default {PG_URL}")
    parser.add_argument("--broker-url", default=BROKER_URL, help=f"RabbitMQ; default {BROKER_URL}")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help="Redis; default db 15")
    args = parser.parse_args()
    defaults = (
        QUICK
        if args.quick
        else {"rounds": 3, "duration": 10, "warmup": 2, "replicas": (1, 2, 3), "processes": (1, 2)}
    )
    explicit = args.replicas is not None or args.processes is not None
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.configs = tuple((r, p) for r in args.replicas for p in args.processes)
    if args.quick and not explicit:
        args.configs = QUICK_CONFIGS
    if min(args.rounds, args.duration, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error(
            "--rounds, --duration, --connections and --threads must be positive, --warmup not negative"
        )
    if not 1024 <= args.base_port <= 65535 - 70:
        parser.error("--base-port: the cluster needs 70 ports from it")
    return args


def main() -> int:
    args = parse_args()
    return stoppable_main(lambda _stop: run(args))


if __name__ == "__main__":
    sys.exit(main())

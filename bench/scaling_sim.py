"""Scaling simulation: a load ramp against the local cluster, and what the HPA/KEDA objects of
deploy/k8s/ would decide from the live metrics at every step (issue 13).

    .venv/bin/python bench/scaling_sim.py                      # 120 s ramp R0 -> 10 x R0, then 30 s at R0
    .venv/bin/python bench/scaling_sim.py --quick              # 20 s ramp + 5 s: checks the machinery
    .venv/bin/python bench/scaling_sim.py --r0 6 --duration 180 --step 5 --concurrency 48
    .venv/bin/python bench/scaling_sim.py --attach http://127.0.0.1:7000   # a running `make cluster`

The cluster: ``deploy/local/cluster.py up`` (as ``make cluster``) on loopback, base port
``--base-port`` (26100), its own temp directory, PostgreSQL databases ``sim_<hex>_<svc>`` and a
RabbitMQ vhost ``sim_<hex>`` (created with rabbitmqctl, guest allowed, deleted at the end; the
default vhost and the node's configuration are not touched; without rabbitmqctl, a bus namespace
``sim_<hex>`` on the URL's vhost, deleted at the end), Redis db 15. As many web replicas and
workers per service as the manifests' minimum replica counts, each web replica shaped like a pod
of the manifests (LOGISTICS_WEB_WORKERS processes x LOGISTICS_WEB_THREADS threads and the pool
from deploy/k8s/configmap.yaml). Seeded through nginx as bench/http.py seeds (1 warehouse, 50
items, 1000 units each) plus a few tickets and one shipment: ``logistics demo`` addresses each
service on its own port with one offset, which the cluster's port layout does not have.

The load: open loop, through nginx, at ``--r0`` requests/s rising linearly to 10 x ``--r0`` over
``--duration`` s, then ``--tail`` s back at ``--r0`` (the way down). ``--concurrency`` keep-alive
clients send what the schedule asks; a request is timed from when it was *due*, so a client
that falls behind shows as latency, and one more than ``--max-late`` s late is dropped (counted).
The mix (``--write-share`` of writes, default 0.3): GET stock, item, shipment by id, the shipment
list and the ticket list; POST shipments (shipping's outbox -> inventory reserves -> shipping and
support consume: every worker's queues and outbox move), receipts (inventory's outbox) and
tickets (support's).

Every ``--step`` s it scrapes /metrics of every web replica and worker and feeds each autoscaler
read from deploy/k8s/ (ScaledObjects and HPAs, read at run time) with what it would see:

* CPU (Utilization): the Deployment's CPU-seconds rate over the last ``--cpu-window`` s (web:
  ``logistics_web_process_cpu_seconds_total``, gunicorn's processes summed; worker:
  ``process_cpu_seconds_total``), spread over the *simulated* replicas, capped at the pod's CPU
  limit, in whole percent of the pod's CPU request (both from the Deployment's manifest);
* Prometheus triggers: the trigger's own query evaluated over every scraped target (e.g.
  ``sum(logistics_http_requests_in_flight{service="inventory"})``), which the HPA divides by the
  simulated replicas (AverageValue);
* RabbitMQ triggers (QueueLength): ``logistics_bus_queue_messages`` of the trigger's queue
  (messages ready, as KEDA's amqp mode counts them), the manifests' ``logistics.`` prefix mapped
  to the run's namespace.

The decisions (bench/kit/autoscale.py): the HPA's formula with tolerance 0.1, its stabilisation
windows and scaling policies (the manifests' ``behavior`` or the defaults), min/max; KEDA's
activation and cooldownPeriod, which only act between 0 and minReplicaCount. THE REPLICAS ARE
SIMULATED: the local cluster keeps its fixed processes, so the load does not spread over the
replicas the autoscaler adds; the measured totals are divided by the simulated count, as the HPA
would see them if the work spread evenly. Each step is one HPA sync (the controller syncs every
15 s; ``--step 15`` matches it).

Output: a table per step, where each trigger first asks for more than the minimum (the offered
rate and the metric then), under ``var/bench/scaling/<UTC stamp>/``: ``scaling.png`` (offered and
achieved rate, simulated replicas per Deployment, web metrics / target, queue depth, outbox age,
p50/p99 latency), ``steps.csv``, ``steps.json`` (steps, autoscalers, facts) and ``report.txt``.
Headline figures go to ``kit/results.py`` ``emit()``. The load average is printed at the start
and at the end with a warning above the cores. The cluster tests' lock is held while the cluster
runs (as bench/scale.py). At the end, also on errors, Ctrl-C or SIGTERM (exit 130), the cluster
is stopped, the databases dropped and the vhost (or namespace) deleted. Exit status 1: more than
1% of the requests failed.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which urllib imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import contextlib
import csv
import http.client
import json
import math
import queue
import random
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit import core, facts
from kit.autoscale import (
    Autoscaler,
    Decision,
    Scaler,
    Trigger,
    load_scalers,
    per_pod,
    ramp_arrivals,
)
from kit.core import BROKER_URL, PG_URL, REPO, SKUS, WAREHOUSE, stoppable_main
from kit.local_cluster import LOCK, LocalCluster, cluster_tests_lock, launcher
from kit.results import emit
from kit.shipments import Client, shipment_body
from kit.stats import percentile

K8S = REPO / "deploy" / "k8s"
OUT = REPO / "var" / "bench" / "scaling"
PREFIX = "sim_"
FACTOR = 10.0
#: The manifests' queue names start with the default bus namespace.
MANIFEST_NAMESPACE = "logistics"
CPU_COUNTERS = ("process_cpu_seconds_total", "logistics_web_process_cpu_seconds_total")
#: (weight, kind): reads, then writes (their weights are scaled to --write-share).
READS = (
    (25, "GET /v1/stock"),
    (10, "GET /v1/items/{sku}"),
    (15, "GET /v1/shipments/{id}"),
    (5, "GET /v1/shipments"),
    (15, "GET /v1/tickets"),
)
WRITES = ((15, "POST /v1/shipments"), (10, "POST /v1/receipts"), (5, "POST /v1/tickets"))


def configmap() -> dict[str, str]:
    import yaml

    document = yaml.safe_load((K8S / "configmap.yaml").read_text())
    return {str(k): str(v) for k, v in (document.get("data") or {}).items()}


# -- the broker: a vhost of the run's own ---------------------------------------------------------


class Bus:
    """A RabbitMQ vhost ``sim_<hex>`` (rabbitmqctl), or a namespace of that name on the URL's vhost."""

    def __init__(self, broker_url: str, tag: str) -> None:
        self.name = f"{PREFIX}{tag}"
        self.base_url = broker_url
        self.rabbitmqctl = shutil.which(
            "rabbitmqctl", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"])
        )
        self.vhost = False
        self.namespace = MANIFEST_NAMESPACE

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.rabbitmqctl is not None
        return subprocess.run(
            [self.rabbitmqctl, *args], capture_output=True, text=True, timeout=60, check=False
        )

    def __enter__(self) -> "Bus":
        user = urllib.parse.urlsplit(self.base_url).username or "guest"
        if self.rabbitmqctl and self._ctl("add_vhost", self.name).returncode == 0:
            self.vhost = True
            done = self._ctl("set_permissions", "-p", self.name, user, ".*", ".*", ".*")
            if done.returncode != 0:
                self.__exit__()
                raise SystemExit(f"rabbitmqctl set_permissions failed: {done.stderr.strip()}")
        else:
            print("no private vhost (rabbitmqctl): a namespace of the run's own instead", file=sys.stderr)
            self.namespace = self.name
        return self

    @property
    def url(self) -> str:
        if not self.vhost:
            return self.base_url
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + self.name, "", ""))

    def describe(self) -> str:
        if self.vhost:
            return f"vhost {self.name} (namespace {self.namespace}, the manifests' queue names)"
        return f"namespace {self.name} on {self.base_url}"

    def __exit__(self, *_exc: object) -> None:
        if self.vhost:
            done = self._ctl("delete_vhost", self.name)
            print(
                f"deleted vhost {self.name}" if done.returncode == 0 else done.stderr.strip(), file=sys.stderr
            )
        else:
            from kit.broker import safely_delete_namespace

            safely_delete_namespace(self.base_url, self.namespace)


# -- the cluster -----------------------------------------------------------------------------------


@dataclass
class Target:
    """One scraped process: a web replica or a worker of a Deployment."""

    deployment: str
    url: str


class Cluster(LocalCluster):
    """The local cluster of this run (deploy/local/cluster.py up/down), or one attached to."""

    def targets(self) -> list[Target]:
        found = []
        for svc in self.layout.services:
            found += [
                Target(f"{svc}-web", f"http://127.0.0.1:{p}/metrics") for p in self.layout.web_ports(svc)
            ]
            found += [
                Target(f"{svc}-worker", f"http://127.0.0.1:{p}/metrics")
                for p in self.layout.worker_ports(svc)
            ]
        return found


def attached(url: str) -> Cluster:
    """A running cluster whose nginx is ``url``: the processes that answer /metrics in its layout."""
    port = urllib.parse.urlsplit(url).port or 80
    env = dict(os.environ, LOGISTICS_CLUSTER_BASE_PORT=str(port))
    module = launcher()
    env.update(
        LOGISTICS_CLUSTER_WEB_REPLICAS=str(module.MAX_REPLICAS),
        LOGISTICS_CLUSTER_WORKER_REPLICAS=str(module.MAX_REPLICAS),
    )
    cluster = Cluster(env, None)
    answering = []
    for target in cluster.targets():
        with contextlib.suppress(OSError), urllib.request.urlopen(target.url, timeout=2) as response:
            if response.status == 200:
                answering.append(target)
    if not answering:
        raise SystemExit(
            f"nothing answers /metrics in the layout of {url} (LOGISTICS_CLUSTER_BASE_PORT={port})"
        )
    cluster.targets = lambda: answering  # type: ignore[method-assign]
    return cluster


# -- the load ------------------------------------------------------------------------------------


@dataclass
class Done:
    kind: str
    due: float  # monotonic
    end: float
    status: int


@dataclass
class Load:
    """The open-loop schedule and its senders."""

    front_door: str
    token: str
    arrivals: list[float]
    concurrency: int
    max_late: float
    write_share: float
    seed: int = 13
    shipment_ids: list[str] = field(default_factory=list)
    done: list[Done] = field(default_factory=list)
    dropped: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        reads = sum(w for w, _ in READS)
        writes = sum(w for w, _ in WRITES)
        self.kinds = [k for _, k in READS] + [k for _, k in WRITES]
        self.weights = [w * (1 - self.write_share) / reads for w, _ in READS] + [
            w * self.write_share / writes for w, _ in WRITES
        ]
        self.start = 0.0

    def request(self, client: Client, kind: str, n: int, rng: random.Random) -> int:
        sku = SKUS[n % len(SKUS)]
        if kind == "GET /v1/stock":
            return client.request("GET", f"/v1/stock?warehouse={WAREHOUSE}&sku={sku}")[0]
        if kind == "GET /v1/items/{sku}":
            return client.request("GET", f"/v1/items/{sku}")[0]
        if kind == "GET /v1/shipments/{id}":
            with self.lock:
                ident = rng.choice(self.shipment_ids) if self.shipment_ids else ""
            return client.request("GET", f"/v1/shipments/{ident}")[0]
        if kind == "GET /v1/shipments":
            return client.request("GET", "/v1/shipments?limit=20")[0]
        if kind == "GET /v1/tickets":
            return client.request("GET", "/v1/tickets?limit=20")[0]
        if kind == "POST /v1/shipments":
            status, body = client.request("POST", "/v1/shipments", shipment_body(f"SIM-{self.run_id}-{n}", n))
            if status == 201 and isinstance(body, dict):
                with self.lock:
                    self.shipment_ids.append(str(body.get("id")))
            return status
        if kind == "POST /v1/receipts":
            body = {"warehouse": WAREHOUSE, "sku": sku, "quantity": 1}
            return client.request("POST", "/v1/receipts", body)[0]
        body = {"subject": f"Simulated ticket {n}", "description": "A parcel question from the ramp."}
        return client.request("POST", "/v1/tickets", body)[0]

    def run(self, stop: threading.Event) -> None:
        jobs: queue.Queue[int | None] = queue.Queue()
        kinds = random.Random(self.seed).choices(self.kinds, self.weights, k=len(self.arrivals))

        def sender(index: int) -> None:
            client = Client(self.front_door, self.token, timeout=30)
            rng = random.Random(self.seed + index)
            try:
                while (n := jobs.get()) is not None:
                    due = self.start + self.arrivals[n]
                    if stop.is_set():
                        continue
                    if time.monotonic() - due > self.max_late:
                        with self.lock:
                            self.dropped += 1
                        continue
                    try:
                        status = self.request(client, kinds[n], n, rng)
                    except (http.client.HTTPException, OSError):
                        status = 0
                    with self.lock:
                        self.done.append(Done(kinds[n], due, time.monotonic(), status))
            finally:
                client.close()

        senders = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(self.concurrency)]
        for thread in senders:
            thread.start()
        try:
            for n, at in enumerate(self.arrivals):
                delay = self.start + at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                jobs.put(n)
        finally:
            for _ in senders:
                jobs.put(None)
            for thread in senders:
                thread.join(40)


# -- the metrics -----------------------------------------------------------------------------------

Sample = tuple[str, dict[str, str], float]


def scrape(url: str) -> list[Sample] | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def queue_name(manifest_queue: str, namespace: str) -> str:
    head, _, rest = manifest_queue.partition(".")
    return f"{namespace}.{rest}" if head == MANIFEST_NAMESPACE and rest else manifest_queue


class Meter:
    """The measured values each trigger needs, per step, from every target's /metrics."""

    def __init__(self, targets: list[Target], namespace: str, cpu_window: float) -> None:
        self.targets = targets
        self.namespace = namespace
        self.cpu_window = cpu_window
        self.cpu_history: dict[str, list[tuple[float, float]]] = {}
        self.pool = ThreadPoolExecutor(max_workers=min(12, len(targets)))
        self.failed: list[str] = []
        #: deployment -> the CPU counter its processes export (recorded in steps.json)
        self.counters: dict[str, str] = {}
        #: deployment -> [(t, CPU-seconds, API requests served, their seconds)], every reading
        self.totals: dict[str, list[tuple[float, float, float, float]]] = {}

    def read(self, now: float) -> tuple[dict[str, list[Sample]], dict[str, float | None]]:
        """(deployment -> its samples, deployment -> its CPU rate in cores)."""
        results = list(self.pool.map(lambda t: (t, scrape(t.url)), self.targets))
        by: dict[str, list[Sample]] = {}
        cpu: dict[str, float] = {}
        for target, samples in results:
            by.setdefault(target.deployment, [])
            if samples is None:
                self.failed.append(f"{now:.0f}s {target.url}")
                continue
            by[target.deployment] += samples
            for name in CPU_COUNTERS:
                values = [v for n, _, v in samples if n == name]
                if values:
                    cpu[target.deployment] = cpu.get(target.deployment, 0.0) + sum(values)
                    self.counters[target.deployment] = name
                    break
        rates: dict[str, float | None] = {}
        for deployment in by:
            history = self.cpu_history.setdefault(deployment, [])
            if deployment in cpu:
                history.append((now, cpu[deployment]))
                self.totals.setdefault(deployment, []).append((now, cpu[deployment], *served(by[deployment])))
            window = [h for h in history if h[0] >= now - self.cpu_window - 0.5]
            if len(window) >= 2 and window[-1][0] > window[0][0]:
                rates[deployment] = max(0.0, (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]))
            else:
                rates[deployment] = None
        return by, rates

    def value(
        self, trigger: Trigger, deployment: str, every: list[Sample], cpu: dict[str, float | None]
    ) -> float | None:
        from kit.autoscale import evaluate

        if trigger.resource:
            return cpu.get(deployment)
        if trigger.query is not None:
            return evaluate(trigger.query, every)
        if trigger.queue:
            name = queue_name(trigger.queue, self.namespace)
            depths = [
                v
                for n, labels, v in every
                if n == "logistics_bus_queue_messages" and labels.get("queue") == name
            ]
            return max(depths) if depths else None
        return None


# -- one run ---------------------------------------------------------------------------------------


@dataclass
class Step:
    t: float
    offered: float
    achieved: float
    errors: int
    dropped: int
    p50: float
    p99: float
    load1: float
    replicas: dict[str, int]
    decisions: dict[str, Decision]
    values: dict[str, dict[str, float | None]]
    seen: dict[str, dict[str, float | None]]
    cpu: dict[str, float | None]
    queue_depth: dict[str, float | None]
    outbox_age: dict[str, float | None]
    in_flight_mean: dict[str, float | None]


def seed(front: str, token: str) -> list[str]:
    """The kit's warehouse, items and stock (unless there), 3 tickets and one shipment: its id."""
    status, body = core.http_json("GET", f"{front}/v1/stock?warehouse={WAREHOUSE}&sku={SKUS[0]}", token=token)
    if not (status == 200 and isinstance(body, dict) and body.get("items")):
        core.seed(core.http_seeder(front, token))
    post = core.http_seeder(front, token)
    for n in range(3):
        post("/v1/tickets", {"subject": f"Seed ticket {n}", "description": "Where is my parcel?"})
    reply = post("/v1/shipments", shipment_body(f"SIM-SEED-{uuid.uuid4().hex[:8]}", 0))
    return [str(reply["id"])] if isinstance(reply, dict) else []


def api(labels: dict[str, str]) -> bool:
    """Not a probe or a scrape (the balancers' health checks and this script's reads)."""
    route = labels.get("route", "")
    return not any(word in route for word in ("healthz", "readyz", "metrics"))


def histogram_sum(samples: list[Sample]) -> float:
    return sum(
        v for n, labels, v in samples if n == "logistics_http_request_duration_seconds_sum" and api(labels)
    )


def served(samples: list[Sample]) -> tuple[float, float]:
    """(API requests answered, the seconds they took) so far, from the latency histogram."""
    count = sum(
        v for n, labels, v in samples if n == "logistics_http_request_duration_seconds_count" and api(labels)
    )
    return count, histogram_sum(samples)


def simulate(args: argparse.Namespace, stop: threading.Event) -> tuple[str, bool]:
    scalers = load_scalers(K8S)
    if not scalers:
        raise SystemExit(f"no ScaledObject or HorizontalPodAutoscaler under {K8S}")
    start_facts = facts.machine()
    print("\n".join(facts.lines(start_facts, 14)), file=sys.stderr)
    tag = uuid.uuid4().hex[:8]
    settings = configmap()
    web_min = max((s.min_replicas for s in scalers if s.deployment.endswith("-web")), default=2)
    worker_min = max((s.min_replicas for s in scalers if s.deployment.endswith("-worker")), default=1)
    info: list[tuple[str, str]] = []
    with contextlib.ExitStack() as stack:
        if args.attach:
            cluster = attached(args.attach)
            namespace = args.namespace or discover_namespace(cluster.targets())
            secret = args.jwt_secret or os.environ.get("LOGISTICS_JWT_SECRET") or read_secret()
            token_env = dict(os.environ, LOGISTICS_JWT_SECRET=secret)
            info.append(("cluster", f"attached to {args.attach}: {len(cluster.targets())} processes"))
        else:
            from kit.databases import databases, postgres_facts

            module = launcher()
            names = {svc: f"{PREFIX}{tag}_{svc}" for svc in module.services()}
            locked = stack.enter_context(cluster_tests_lock(args.lock_wait))
            tmp = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="sim-cluster-", ignore_cleanup_errors=True)
            )
            urls = stack.enter_context(databases(args.pg_url, names))
            bus = stack.enter_context(Bus(args.broker_url, tag))
            namespace = bus.namespace
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGISTICS_", "PROMETHEUS_"))}
            env.update(
                LOGISTICS_CLUSTER_DIR=tmp,
                LOGISTICS_CLUSTER_BASE_PORT=str(args.base_port),
                LOGISTICS_CLUSTER_WEB_REPLICAS=str(web_min),
                LOGISTICS_CLUSTER_WEB_PROCESSES=settings.get("LOGISTICS_WEB_WORKERS", "1"),
                LOGISTICS_CLUSTER_WORKER_REPLICAS=str(worker_min),
                LOGISTICS_CLUSTER_AUTORESTART="false",
                LOGISTICS_BROKER_URL=bus.url,
                LOGISTICS_BUS_NAMESPACE=namespace,
                LOGISTICS_REDIS_URL=args.redis_url,
                LOGISTICS_JWT_SECRET=core.JWT_SECRET,
                LOGISTICS_SECRETS_KEY=core.SECRETS_KEY,
                LOGISTICS_LOG_LEVEL="WARNING",
                LOGISTICS_ACCESS_LOG="false",
                # A throughput bench: the rate limiter is off (bench/ratelimit.py measures it).
                LOGISTICS_RATE_LIMITS_ENABLED="false",
                LOGISTICS_QUEUE_METRICS_SECONDS=str(min(args.step, 5.0) / 2),
                LOGISTICS_OUTBOX_METRICS_SECONDS=str(min(args.step, 5.0) / 2),
            )
            for key in ("LOGISTICS_WEB_THREADS", "LOGISTICS_DB_POOL_SIZE", "LOGISTICS_DB_MAX_OVERFLOW"):
                if key in settings:
                    env[key] = settings[key]
            env.update({f"LOGISTICS_{svc.upper()}_DATABASE_URL": url for svc, url in urls.items()})
            cluster = Cluster(env, Path(tmp))
            token_env = env
            stack.callback(cluster.down)
            print(
                f"bringing the cluster up: {web_min} web replicas x "
                f"{env['LOGISTICS_CLUSTER_WEB_PROCESSES']} process(es) x "
                f"{env.get('LOGISTICS_WEB_THREADS', '1')} threads and {worker_min} worker(s) per service, "
                f"nginx on :{cluster.layout.nginx}, {bus.describe()} ...",
                file=sys.stderr,
            )
            seconds = cluster.up()
            info += [
                (
                    "cluster",
                    f"deploy/local/cluster.py (up in {seconds:.0f} s): per service {web_min} web replicas x "
                    f"{env['LOGISTICS_CLUSTER_WEB_PROCESSES']} gunicorn process(es) x "
                    f"{env.get('LOGISTICS_WEB_THREADS', '1')} threads, {worker_min} worker(s); nginx "
                    f":{cluster.layout.nginx}",
                ),
                (
                    "data",
                    f"databases {', '.join(names.values())} ({postgres_facts(args.pg_url)}); "
                    f"{bus.describe()}",
                ),
                ("cluster lock", "held" if locked else f"NOT held ({LOCK}): a cluster test may have run"),
            ]
        token = core.admin_token(token_env)
        front = args.attach.rstrip("/") if args.attach else cluster.front_door
        print("seeding through the front door ...", file=sys.stderr)
        ids = seed(front, token)
        targets = cluster.targets()
        real = {d: sum(t.deployment == d for t in targets) for d in {t.deployment for t in targets}}
        steps, load, meter = drive(args, stop, front, token, ids, scalers, targets, namespace, real)
    info += [
        (
            "load",
            f"open loop through nginx: {args.r0:g} -> {FACTOR * args.r0:g} req/s over {args.duration:g} s, "
            "then "
            f"{args.tail:g} s at {args.r0:g}; {args.concurrency} clients; writes {args.write_share:.0%}",
        ),
        ("step", f"{args.step:g} s (one HPA sync per step); CPU rate over {args.cpu_window:g} s"),
    ]
    return report(args, scalers, steps, load, meter, real, [*start_facts, *info], namespace)


def discover_namespace(targets: list[Target]) -> str:
    for target in targets:
        for name, labels, _ in scrape(target.url) or []:
            if name == "logistics_bus_queue_messages" and labels.get("kind") == "consume":
                return labels["queue"].rsplit(".", 2)[0]
    return MANIFEST_NAMESPACE


def read_secret() -> str:
    path = REPO / "var" / "cluster" / "jwt-secret"
    if not path.exists():
        raise SystemExit("--attach: pass --jwt-secret or LOGISTICS_JWT_SECRET (the cluster's)")
    return path.read_text().strip()


def drive(
    args: argparse.Namespace,
    stop: threading.Event,
    front: str,
    token: str,
    ids: list[str],
    scalers: list[Scaler],
    targets: list[Target],
    namespace: str,
    real: dict[str, int],
) -> tuple[list[Step], Load, Meter]:
    arrivals = ramp_arrivals(args.r0, FACTOR, args.duration)
    arrivals += [args.duration + k / args.r0 for k in range(int(args.tail * args.r0))]
    load = Load(
        front, token, arrivals, args.concurrency, args.max_late, args.write_share, shipment_ids=list(ids)
    )
    meter = Meter(targets, namespace, args.cpu_window)
    autoscalers = {s.deployment: Autoscaler(s, real.get(s.deployment, s.min_replicas)) for s in scalers}
    for s in scalers:
        if s.deployment not in real:
            print(
                f"warning: {s.deployment} has no process in the local cluster: its metrics are absent",
                file=sys.stderr,
            )
    steps: list[Step] = []
    total = args.duration + args.tail
    load.start = time.monotonic() + 0.5
    sender = threading.Thread(target=load.run, args=(stop,), name="load", daemon=True)
    # The first reading (t = 0) is the baseline of the CPU rate.
    meter.read(0.0)
    previous_sum: dict[str, float] = {}
    sender.start()
    k, last_count = 1, 0
    print(
        f"{'t s':>5} {'offered':>7} {'got/s':>6} {'p50':>6} {'p99':>7} {'err':>4}  simulated replicas",
        file=sys.stderr,
    )
    while True:
        wake = load.start + k * args.step
        if wake > load.start + total + args.step / 2:
            break
        if stop.wait(max(0.0, wake - time.monotonic())):
            break
        now = time.monotonic() - load.start
        by, cpu = meter.read(now)
        every = [s for samples in by.values() for s in samples]
        with load.lock:
            batch = load.done[last_count:]
            last_count = len(load.done)
            dropped = load.dropped
        latencies = [1000 * (d.end - d.due) for d in batch]
        step = Step(
            t=now,
            offered=sum(now - args.step < at <= now for at in arrivals) / args.step,
            achieved=len(batch) / args.step,
            errors=sum(not 200 <= d.status < 300 for d in batch),
            dropped=dropped,
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
            load1=os.getloadavg()[0],
            replicas={},
            decisions={},
            values={},
            seen={},
            cpu=cpu,
            queue_depth={},
            outbox_age={},
            in_flight_mean={},
        )
        for deployment, samples in by.items():
            if deployment.endswith("-web"):
                total_sum = histogram_sum(samples)
                if deployment in previous_sum:
                    step.in_flight_mean[deployment] = (
                        max(0.0, total_sum - previous_sum[deployment]) / args.step
                    )
                previous_sum[deployment] = total_sum
        for scaler in scalers:
            auto = autoscalers[scaler.deployment]
            values = {t.name: meter.value(t, scaler.deployment, every, cpu) for t in auto.triggers}
            current = auto.current
            step.seen[scaler.deployment] = {
                name: (per_pod(t, scaler, v, current) if v is not None and current else None)
                for t in auto.triggers
                for name, v in [(t.name, values[t.name])]
            }
            decision = auto.decide(now, values)
            step.values[scaler.deployment] = values
            step.decisions[scaler.deployment] = decision
            step.replicas[scaler.deployment] = decision.replicas
            depths = [values[t.name] for t in auto.triggers if t.queue and values[t.name] is not None]
            if depths:
                step.queue_depth[scaler.deployment] = max(v for v in depths if v is not None)
            ages = [
                values[t.name]
                for t in auto.triggers
                if t.query and "outbox" in t.query.metric and values[t.name] is not None
            ]
            if ages:
                step.outbox_age[scaler.deployment] = max(v for v in ages if v is not None)
        steps.append(step)
        print(
            f"{now:>5.0f} {step.offered:>7.1f} {step.achieved:>6.1f} {step.p50:>6.0f} {step.p99:>7.0f} "
            f"{step.errors:>4}  " + " ".join(f"{short(d)} {n}" for d, n in step.replicas.items()),
            file=sys.stderr,
        )
        k += 1
    stop.set()
    sender.join(60)
    return steps, load, meter


def short(deployment: str) -> str:
    svc, _, kind = deployment.partition("-")
    return f"{svc[:4]}-{kind[:3]}"


# -- the report ----------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def trips(scalers: list[Scaler], steps: list[Step], real: dict[str, int]) -> list[str]:
    """Where each trigger first asked for more replicas than the Deployment started with, and
    where each Deployment reached its maximum."""
    lines = []
    for scaler in scalers:
        start = real.get(scaler.deployment, scaler.min_replicas)
        for trigger in scaler.triggers:
            if trigger.unsupported:
                lines.append(
                    f"  {scaler.deployment:<17} {trigger.name}: not simulated ({trigger.unsupported})"
                )
                continue
            hit = next(
                (s for s in steps if s.decisions[scaler.deployment].proposals.get(trigger.name, 0) > start),
                None,
            )
            peak = max((s.seen[scaler.deployment].get(trigger.name) or 0.0 for s in steps), default=0.0)
            unit = "% CPU of request" if trigger.resource else "per pod"
            if hit is None:
                lines.append(
                    f"  {scaler.deployment:<17} {trigger.name}: never trips "
                    f"(target {trigger.target:g} {unit}; "
                    f"highest seen {peak:.1f})"
                )
            else:
                seen = hit.seen[scaler.deployment].get(trigger.name)
                lines.append(
                    f"  {scaler.deployment:<17} {trigger.name}: trips at t={hit.t:.0f} s, "
                    f"offered {hit.offered:.1f} req/s (seen {fmt(seen)} vs target {trigger.target:g} {unit}; "
                    f"p99 then {fmt(hit.p99, '.0f')} ms)"
                )
        top = next((s for s in steps if s.replicas[scaler.deployment] >= scaler.max_replicas), None)
        if top is not None:
            lines.append(
                f"  {scaler.deployment:<17} reaches maxReplicas {scaler.max_replicas} at t={top.t:.0f} s "
                f"(offered {top.offered:.1f} req/s)"
            )
    return lines


def capacity(scalers: list[Scaler], meter: Meter) -> dict[str, dict[str, Any]]:
    """Per web Deployment: CPU-seconds and server seconds per API request over the run (first to
    last reading), and the request rate per pod at which each of its targets would be reached:
    CPU at ``target% x request / CPU per request``, in-flight (Little's law) at ``target / latency``."""
    out: dict[str, dict[str, Any]] = {}
    for scaler in scalers:
        totals = meter.totals.get(scaler.deployment, [])
        if len(totals) < 2 or totals[-1][2] <= totals[0][2]:
            continue
        (_, cpu0, n0, s0), (_, cpu1, n1, s1) = totals[0], totals[-1]
        requests = n1 - n0
        cpu_per, latency = (cpu1 - cpu0) / requests, (s1 - s0) / requests
        found: dict[str, Any] = {"requests": requests, "cpu_ms": 1000 * cpu_per, "server_ms": 1000 * latency}
        parts = []
        for trigger in scaler.triggers:
            if trigger.resource and scaler.cpu_request and cpu_per > 0:
                rate = trigger.target / 100 * scaler.cpu_request / cpu_per
                found[f"{trigger.name} rate per pod"] = rate
                parts.append(
                    f"CPU {trigger.target:g}% of {scaler.cpu_request * 1000:.0f}m at {rate:.0f} req/s"
                )
            elif trigger.query and "in_flight" in trigger.query.metric and latency > 0:
                rate = trigger.target / latency
                found[f"{trigger.name} rate per pod"] = rate
                parts.append(f"{trigger.target:g} in flight at {rate:.0f} req/s")
        if scaler.cpu_limit and cpu_per > 0:
            found["limit rate per pod"] = scaler.cpu_limit / cpu_per
            parts.append(f"the {scaler.cpu_limit:g}-core limit at {scaler.cpu_limit / cpu_per:.0f} req/s")
        found["line"] = (
            f"  {scaler.deployment:<17} {requests:.0f} requests: {1000 * cpu_per:.1f} ms CPU and "
            f"{1000 * latency:.0f} ms in the server each; per pod: " + ", ".join(parts)
        )
        out[scaler.deployment] = found
    return out


def failure_counts(done: list[Done]) -> list[tuple[tuple[str, int], int]]:
    counts: dict[tuple[str, int], int] = {}
    for d in done:
        if not 200 <= d.status < 300:
            counts[(d.kind, d.status)] = counts.get((d.kind, d.status), 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])


def notes(scalers: list[Scaler]) -> list[str]:
    out = []
    for s in scalers:
        if s.keda and s.idle is None and s.cooldown_set:
            out.append(
                f"  {s.deployment}: its cooldownPeriod {s.cooldown:.0f} s has no effect (minReplicaCount "
                f"{s.min_replicas}: KEDA's cooldown only scales to 0); the way down is the HPA's "
                f"{s.down.window:.0f} s window, then {policy_text(s)}"
            )
    return out


def policy_text(s: Scaler) -> str:
    return ", ".join(
        f"{p.value}{'%' if p.type == 'Percent' else ' pod(s)'} per {p.period:.0f} s" for p in s.down.policies
    )


def report(
    args: argparse.Namespace,
    scalers: list[Scaler],
    steps: list[Step],
    load: Load,
    meter: Meter,
    real: dict[str, int],
    machine_facts: list[tuple[str, str]],
    namespace: str,
) -> tuple[str, bool]:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.out or OUT / stamp)
    out.mkdir(parents=True, exist_ok=True)
    deployments = [s.deployment for s in scalers]
    done = load.done
    failed = sum(not 200 <= d.status < 300 for d in done)
    lines = [
        "",
        "Scaling simulation: a load ramp on the local cluster, and what deploy/k8s/'s autoscalers "
        "would decide",
        "",
        *facts.lines([*machine_facts, ("load average", f"{facts.load_average()} (at end)")], 14),
        "",
        "REPLICAS ARE SIMULATED: the local cluster keeps "
        + ", ".join(f"{short(d)} {real.get(d, 0)}" for d in deployments)
        + " processes; the measured totals are divided by the simulated replicas as the HPA would see them.",
        "",
    ]
    head = (
        f"{'t s':>5} {'offer':>6} {'got/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} {'load1':>5}  "
        + " ".join(f"{short(d):>9}" for d in deployments)
    )
    lines += [head, "-" * len(head)]
    for s in steps:
        lines.append(
            f"{s.t:>5.0f} {s.offered:>6.1f} {s.achieved:>6.1f} {fmt(s.p50, '.0f'):>7} {fmt(s.p99, '.0f'):>7} "
            f"{s.errors:>4} {s.load1:>5.2f}  " + " ".join(f"{s.replicas[d]:>9}" for d in deployments)
        )
    lines += ["", "What each autoscaler saw at the peak step (metric per simulated pod / target):", ""]
    peak = max(steps, key=lambda s: s.offered) if steps else None
    if peak is not None:
        for scaler in scalers:
            d = scaler.deployment
            cells = ", ".join(
                f"{t.name} {fmt(peak.seen[d].get(t.name))}/{t.target:g}"
                for t in scaler.triggers
                if not t.unsupported
            )
            lines.append(f"  {d:<17} {peak.replicas[d]:>2} replicas ({peak.decisions[d].reason}): {cells}")
    lines += ["", "Where the thresholds trip:", "", *trips(scalers, steps, real)]
    costs = capacity(scalers, meter)
    lines += ["", "What a request costs, measured over the run, and the rate per pod where each web", ""]
    lines[-2] += " target is met:"
    lines += [c["line"] for c in costs.values()]
    extra = notes(scalers)
    if extra:
        lines += ["", "Notes on the manifests:", "", *extra]
    lines += [
        "",
        f"requests: {len(done)} answered, {failed} failed (non-2xx or no answer), {load.dropped} dropped "
        f"(more than {args.max_late:g} s late); shipments created {len(load.shipment_ids)}",
        f"output: {out}/scaling.png, steps.csv, steps.json, report.txt",
    ]
    failures = failure_counts(done)
    if failures:
        lines.insert(
            -1,
            "failed, by request and status (0: no answer within 30 s or connection lost): "
            + ", ".join(f"{kind} {status} x{n}" for (kind, status), n in failures),
        )
    text = "\n".join(lines) + "\n"
    write_files(out, args, scalers, steps, load, real, machine_facts, namespace, text, meter, costs)
    if peak is not None:
        emit("scaling_sim", "peak offered rate", peak.offered, "req/s", load=peak.load1)
        emit("scaling_sim", "p99 at peak", peak.p99, "ms", offered=peak.offered)
        for d in deployments:
            emit(
                "scaling_sim",
                f"{d} simulated replicas at peak",
                peak.replicas[d],
                "replicas",
                offered=peak.offered,
            )
    return text, bool(done) and failed > 0.01 * len(done)


def write_files(
    out: Path,
    args: argparse.Namespace,
    scalers: list[Scaler],
    steps: list[Step],
    load: Load,
    real: dict[str, int],
    machine_facts: list[tuple[str, str]],
    namespace: str,
    text: str,
    meter: Meter,
    costs: dict[str, dict[str, Any]],
) -> None:
    deployments = [s.deployment for s in scalers]
    rows = []
    for s in steps:
        row: dict[str, Any] = {
            "t": round(s.t, 2),
            "offered_rps": round(s.offered, 2),
            "achieved_rps": round(s.achieved, 2),
            "errors": s.errors,
            "dropped": s.dropped,
            "p50_ms": s.p50,
            "p99_ms": s.p99,
            "load1": s.load1,
        }
        for scaler in scalers:
            d = scaler.deployment
            row[f"{d}.replicas"] = s.replicas[d]
            row[f"{d}.desired"] = s.decisions[d].desired
            row[f"{d}.reason"] = s.decisions[d].reason
            row[f"{d}.cpu_cores"] = s.cpu.get(d)
            if d in s.in_flight_mean:
                row[f"{d}.in_flight_mean"] = s.in_flight_mean[d]
            for t in scaler.triggers:
                if t.unsupported:
                    continue
                row[f"{d}.{t.name}.value"] = s.values[d].get(t.name)
                row[f"{d}.{t.name}.seen"] = s.seen[d].get(t.name)
                row[f"{d}.{t.name}.proposal"] = s.decisions[d].proposals.get(t.name)
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with (out / "steps.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "args": dict(vars(args)),
        "facts": machine_facts,
        "namespace": namespace,
        "local_processes": real,
        "autoscalers": [
            {
                "deployment": s.deployment,
                "kind": s.kind,
                "file": os.path.relpath(s.path, REPO),
                "min": s.min_replicas,
                "max": s.max_replicas,
                "cpu_request": s.cpu_request,
                "cpu_limit": s.cpu_limit,
                "cooldown": s.cooldown,
                "scale_up": {"window": s.up.window, "policies": [vars(p) for p in s.up.policies]},
                "scale_down": {"window": s.down.window, "policies": [vars(p) for p in s.down.policies]},
                "triggers": [
                    {
                        "name": t.name,
                        "type": t.type,
                        "kind": t.kind,
                        "target": t.target,
                        "unsupported": t.unsupported,
                    }
                    for t in s.triggers
                ],
            }
            for s in scalers
        ],
        "requests": {
            "answered": len(load.done),
            "dropped": load.dropped,
            "failed": [{"request": k, "status": st, "count": n} for (k, st), n in failure_counts(load.done)],
        },
        "cpu_counters": meter.counters,
        "scrape_failures": meter.failed,
        "capacity": {d: {k: v for k, v in c.items() if k != "line"} for d, c in costs.items()},
        "steps": rows,
    }
    (out / "steps.json").write_text(json.dumps(meta, indent=1, default=str))
    (out / "report.txt").write_text(text)
    plot(out / "scaling.png", scalers, steps, real, deployments, args)


def plot(
    path: Path,
    scalers: list[Scaler],
    steps: list[Step],
    real: dict[str, int],
    deployments: list[str],
    args: Any,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in steps]
    fig, axes = plt.subplots(6, 1, figsize=(11, 17), sharex=True)
    ax = axes[0]
    ax.plot(t, [s.offered for s in steps], label="offered (schedule)", color="black", linestyle="--")
    ax.plot(t, [s.achieved for s in steps], label="answered", color="tab:blue")
    ax.plot(t, [s.errors / args.step for s in steps], label="failed", color="tab:red")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(
        "Scaling simulation: what deploy/k8s/'s HPA/KEDA objects would decide\n"
        "replicas are SIMULATED (the local cluster keeps "
        + ", ".join(f"{short(d)} {real.get(d, 0)}" for d in deployments)
        + ")",
        fontsize=10,
    )
    ax = axes[1]
    colours = plt.get_cmap("tab10")
    for i, scaler in enumerate(scalers):
        d = scaler.deployment
        ax.step(
            t,
            [s.replicas[d] + (i % 3) * 0.04 for s in steps],
            where="post",
            label=f"{d} (min {scaler.min_replicas}, max {scaler.max_replicas})",
            color=colours(i),
            linestyle="-" if d.endswith("-web") else "--",
        )
    ax.set_ylabel("simulated replicas")
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    ax = axes[2]
    for i, scaler in enumerate(scalers):
        if not scaler.deployment.endswith("-web"):
            continue
        for trigger, style in zip(
            (tr for tr in scaler.triggers if not tr.unsupported), ("-", ":", "-."), strict=False
        ):
            ax.plot(
                t,
                [
                    (v / trigger.target)
                    if (v := s.seen[scaler.deployment].get(trigger.name)) is not None
                    else math.nan
                    for s in steps
                ],
                label=f"{scaler.deployment} {trigger.name}",
                color=colours(i),
                linestyle=style,
            )
    ax.axhspan(0.9, 1.1, color="grey", alpha=0.2, label="target ± tolerance")
    ax.set_ylabel("web: metric per pod / target")
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    ax = axes[3]
    for i, scaler in enumerate(scalers):
        d = scaler.deployment
        if any(d in s.queue_depth for s in steps):
            ax.plot(
                t,
                [s.queue_depth.get(d, math.nan) for s in steps],
                label=f"{d} (deepest of its queues)",
                color=colours(i),
            )
    queue_targets = {tr.target for s in scalers for tr in s.triggers if tr.queue}
    for target in queue_targets:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:g} per pod")
    ax.set_ylabel("queue depth (ready)")
    ax.legend(loc="upper left", fontsize=7)
    ax = axes[4]
    for i, scaler in enumerate(scalers):
        d = scaler.deployment
        if any(d in s.outbox_age for s in steps):
            ax.plot(t, [s.outbox_age.get(d, math.nan) for s in steps], label=d, color=colours(i))
    ages = {tr.target for s in scalers for tr in s.triggers if tr.query and "outbox" in tr.query.metric}
    for target in ages:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:g} s per pod")
    ax.set_ylabel("oldest unsent outbox row, s")
    ax.legend(loc="upper left", fontsize=7)
    ax = axes[5]
    ax.plot(t, [s.p50 for s in steps], label="p50", color="tab:blue")
    ax.plot(t, [s.p99 for s in steps], label="p99", color="tab:red")
    ax.set_yscale("log")
    ax.set_ylabel("latency from due, ms")
    ax.set_xlabel("seconds from the start of the ramp")
    ax.legend(loc="upper left", fontsize=8)
    for ax in axes:
        ax.axvline(args.duration, color="grey", linewidth=0.8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- the command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--attach", metavar="URL", help="a running cluster's nginx (e.g. http://127.0.0.1:7000)"
    )
    parser.add_argument("--jwt-secret", help="--attach: the cluster's LOGISTICS_JWT_SECRET")
    parser.add_argument("--namespace", help="--attach: its bus namespace (default: read from the queues)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of the ramp; default 120")
    parser.add_argument(
        "--tail", type=float, default=None, help="seconds back at R0 after the ramp; default 30"
    )
    parser.add_argument(
        "--r0", type=float, default=8.0, help="requests/s at the start (10x at the peak); default 8"
    )
    parser.add_argument(
        "--step", type=float, default=5.0, help="seconds between two readings/decisions; default 5"
    )
    parser.add_argument("--cpu-window", type=float, default=15.0, help="seconds of the CPU rate; default 15")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections; default 32")
    parser.add_argument("--max-late", type=float, default=5.0, help="drop a request this late (s); default 5")
    parser.add_argument("--write-share", type=float, default=0.3, help="share of writes; default 0.3")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 s ramp + 5 s tail")
    parser.add_argument("--base-port", type=int, default=26100, help="the cluster's base port; default 26100")
    parser.add_argument(
        "--lock-wait", type=float, default=300, help="seconds to wait for the cluster tests' lock"
    )
    parser.add_argument("--out", help="output directory (default var/bench/scaling/<UTC stamp>)")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server; default {PG_URL}")
    parser.add_argument("--broker-url", default=BROKER_URL, help=f"RabbitMQ; default {BROKER_URL}")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help="Redis; default db 15")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 20.0 if args.quick else 120.0
    if args.tail is None:
        args.tail = 5.0 if args.quick else 30.0
    if min(args.duration, args.r0, args.step, args.cpu_window) <= 0 or args.concurrency < 1 or args.tail < 0:
        parser.error("--duration, --r0, --step, --cpu-window and --concurrency must be positive")
    if not 0 <= args.write_share <= 1:
        parser.error("--write-share: from 0 to 1")
    if not 1024 <= args.base_port <= 65535 - 70:
        parser.error("--base-port: the cluster needs 70 ports from it")
    return args


def main() -> int:
    args = parse_args()
    return stoppable_main(lambda stop: simulate(args, stop))


if __name__ == "__main__":
    sys.exit(main())

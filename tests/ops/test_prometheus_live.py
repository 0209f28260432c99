"""The shipped alerts and dashboards on a real Prometheus scraping live processes.

``logistics serve inventory`` and ``logistics worker inventory`` run on a private cloned
database and a private bus namespace, the worker reaching RabbitMQ through a TCP proxy; a
``logistics dispatcher shipping`` (inventory has no webhooks) on a private cloned shipping
database, with a secrets key of its own and no endpoint: it exports every webhook metric, at
zero. A Prometheus of the test's own (Debian's package, own directory and port) scrapes the
three, labelled as deploy/prometheus/prometheus.yml relabels them, and evaluates
deploy/prometheus/alerts.yml with every ``for:`` shortened (expressions unchanged). After some
traffic:

(a) every alert expression evaluates without error;
(b) every dashboard panel query (deploy/grafana/dashboards/*.json, rows' panels included,
    ``[kubernetes-only]`` panels left out; none when the directory is absent or empty) evaluates
    without error, and returns series by this rule (``required()``):
    - a query on inventory's board or on the bus board must return series itself;
    - except a query naming a failure the test does not cause (5xx statuses, retries, dead
      letters, returned messages: ``EVENTS_NOT_CAUSED``): such a series does not exist, so a
      ratio or sum over it is empty; then each of its other selectors must return series (a 5xx
      ratio's denominator, the requests it is a ratio of);
    - a query on the board of a service not running here (shipping, support) only has to
      evaluate.
    Inventory's consumer metrics are made real too: a ``shipment.requested`` (what shipping
    sends) is published on the test's namespace and handled by the worker;
(c) with the proxy cut, more unsent outbox rows than LogisticsOutboxBacklog's threshold (a
    stock count imported through ``logistics inventory import``) make it pending, then firing;
    it resolves once the proxy heals and the relay drains the outbox;
(d) with the worker stopped (SIGTERM), LogisticsNoWorkerUp and LogisticsTargetDown fire;
(e) with the dispatcher stopped (SIGTERM, exit 0), LogisticsNoDispatcherUp and
    LogisticsTargetDown (component=dispatcher) fire.

The web runs the rate limiter as deployed: counting in Redis (the machine's, under a key
prefix of the test's own) through a second TCP proxy, with a small anonymous read quota. Its
counters exist at 0 from the start (so the "Rate limits" panels return series in (b)); then:

(f) a burst of requests without a token, mostly answered 429, makes LogisticsRateLimitedShareHigh
    fire for inventory;
(g) with Redis cut, requests go through unchecked and LogisticsRateLimiterFailingOpen, not
    firing before, fires.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the lock
from cryptography.fernet import Fernet

from logistics_shared.identity import Role
from logistics_shared.security import load_keyring, mint_token
from logistics_shared.service import ServiceSpec

from ..conftest import JWT_SECRET, make_settings
from ..helpers.bus import publish_event
from ..helpers.prometheus import Prometheus, find_binary, free_ports, poll, running
from ..helpers.proxy import TcpProxy
from ..services import REDIS_URL, need_service, services_required

pytestmark = [pytest.mark.prometheus, pytest.mark.e2e, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
LOGISTICS = str(Path(sys.executable).with_name("logistics"))
#: Every ``for:`` of alerts.yml becomes this, so pending and firing are seen within seconds.
FOR = "4s"
WAIT = 60.0
SERVICE = "inventory"
#: The service whose webhook dispatcher runs here (inventory has no webhooks).
DISPATCHER = "shipping"
#: Dashboards of services this test does not run: their queries only have to evaluate.
NOT_RUNNING = ("shipping", "support")
#: Selectors of failures the test does not cause: a query made only of these may be empty.
EVENTS_NOT_CAUSED = (
    re.compile(r'status=~"5\.\."'),
    re.compile(r"logistics_bus_retried_total"),
    re.compile(r"logistics_bus_dead_lettered_total"),
    re.compile(r"logistics_bus_returned_total"),
)
KUBERNETES_ONLY = "[kubernetes-only]"
#: Requests per window a caller without a token may make here; (f) sends ANONYMOUS_BURST.
ANONYMOUS_QUOTA = 10
#: Enough that LogisticsRateLimitedShareHigh's traffic floor (0.2 requests/s over its 15m
#: window: 180 requests) is passed by the 429s alone, whatever else the test sent.
ANONYMOUS_BURST = 400


def need_prometheus() -> str:
    """Debian's prometheus: skip without it, or fail under LOGISTICS_REQUIRE_SERVICES=1 (as
    need_tool() in test_alert_rules.py does)."""
    found = find_binary("prometheus")
    if found is None:
        message = "a live Prometheus needs the prometheus binary (apt-get install prometheus)"
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return found


# --- the shipped files ---------------------------------------------------------------------------
def shortened_rules() -> dict[str, Any]:
    """alerts.yml with every ``for:`` set to FOR, expressions untouched."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR
    return dict(rules)


def alert_rules() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"] if "alert" in rule}


def backlog_threshold() -> int:
    expr = alert_rules()["LogisticsOutboxBacklog"]
    found = re.search(r">\s*([0-9]+)\s*$", expr.strip())
    assert found, f"no '> N' threshold in LogisticsOutboxBacklog's expression: {expr!r}"
    return int(found.group(1))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file stem, panel title, expr) of every panel target, rows' panels included,
    ``[kubernetes-only]`` panels left out; nothing when the directory is absent or empty."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")) if DASHBOARDS.is_dir() else []:
        board = json.loads(path.read_text())
        for panel in _panels(board.get("panels") or []):
            if str(panel.get("description") or "").startswith(KUBERNETES_ONLY):
                continue
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    found.append((path.stem, str(panel.get("title", "")), str(target["expr"])))
    return found


def selectors(expr: str) -> list[str]:
    """The series selectors of a query (``name`` or ``name{...}``) of our metrics and ``up``."""
    found = re.findall(r"\b((?:logistics_[a-z0-9_]+|up)(?:\{[^}]*\})?)", expr)
    return list(dict.fromkeys(found))


def required(board: str, expr: str) -> list[str]:
    """What must return series, by the rule of the module docstring (b): the query itself; for
    a query naming a failure the test does not cause, each of its other selectors instead (a
    ratio's denominator: the traffic it is a ratio of); nothing on a board of a service not
    running here."""
    if board in NOT_RUNNING:
        return []
    found = selectors(expr)
    if not any(p.search(s) for s in found for p in EVENTS_NOT_CAUSED):
        return [expr]
    return [s for s in found if not any(p.search(s) for p in EVENTS_NOT_CAUSED)]


# --- the processes -------------------------------------------------------------------------------
class Processes:
    """Subprocesses with a log file each; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # A file, not a pipe: nobody reads a pipe here, and a full one would block the process.
        log = (self.directory / f"{name}.log").open("w")
        process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running[name] = process
        return process

    def stop(self, name: str, timeout: float = 30) -> int:
        process = self.running[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        return process.returncode

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def logs(self, lines: int = 25) -> str:
        out = []
        for name in self.running:
            text = (self.directory / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(out)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


class Api:
    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            # No token (""): a caller without one, counted by its address.
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, body: Any) -> Any:
        status, answer = self.call("POST", path, body)
        assert status in (200, 201), f"POST {path} {body}: {status} {answer!r}"
        return answer


def write_csv(path: Path, header: str, rows: Iterator[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def alert_states(prometheus: Prometheus, name: str) -> list[tuple[str, dict[str, str]]]:
    return [(a["state"], a["labels"]) for a in prometheus.alerts() if a["labels"]["alertname"] == name]


# --- the test ------------------------------------------------------------------------------------
def test_alerts_and_dashboards_on_a_live_prometheus(
    database_factory: Callable[[ServiceSpec, str], str],
    specs: dict[str, ServiceSpec],
    rabbit: str,
    namespace: str,
    proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    binary = need_prometheus()
    need_service("Redis", "127.0.0.1", 6379)
    database_url = database_factory(specs[SERVICE], "postgres")
    dispatcher_database_url = database_factory(specs[DISPATCHER], "postgres")
    web_port, worker_port, dispatcher_port, prometheus_port = free_ports(4)
    # The limiter's Redis, through a proxy (g) can cut; keys of the test's own.
    redis_proxy = TcpProxy("127.0.0.1", 6379)
    key_prefix = f"{namespace}-ratelimit"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGISTICS_", "PROMETHEUS_"))}
    env.update(
        {
            f"LOGISTICS_{SERVICE.upper()}_DATABASE_URL": database_url,
            "LOGISTICS_BROKER_URL": proxy.url,
            "LOGISTICS_BUS_NAMESPACE": namespace,
            "LOGISTICS_JWT_SECRET": JWT_SECRET,
            "LOGISTICS_LOG_LEVEL": "WARNING",
            "LOGISTICS_ACCESS_LOG": "false",
            "LOGISTICS_VAR_DIR": str(tmp_path / "var"),
            "LOGISTICS_DB_POOL_SIZE": "4",
            "LOGISTICS_DB_MAX_OVERFLOW": "2",
            "LOGISTICS_OUTBOX_METRICS_SECONDS": "1",
            "LOGISTICS_QUEUE_METRICS_SECONDS": "1",
            "LOGISTICS_RATE_LIMIT_STORAGE_URL": f"redis://127.0.0.1:{redis_proxy.port}/0",
            "LOGISTICS_RATE_LIMIT_KEY_PREFIX": key_prefix,
            "LOGISTICS_RATE_LIMIT_ANONYMOUS_READ": str(ANONYMOUS_QUOTA),
        }
    )
    # The dispatcher reads its database and its secrets key only (as on Kubernetes: no broker,
    # no JWT key), with the pool its Deployment sets.
    dispatcher_env = {k: v for k, v in env.items() if not k.startswith("LOGISTICS_")}
    dispatcher_env.update(
        {
            f"LOGISTICS_{DISPATCHER.upper()}_DATABASE_URL": dispatcher_database_url,
            "LOGISTICS_SECRETS_KEY": Fernet.generate_key().decode(),
            "LOGISTICS_LOG_LEVEL": "WARNING",
            "LOGISTICS_VAR_DIR": str(tmp_path / "var-dispatcher"),
            "LOGISTICS_DB_POOL_SIZE": "2",
            "LOGISTICS_DB_MAX_OVERFLOW": "0",
        }
    )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": f"logistics-{component}",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"app": app, "component": component}}
                ],
            }
            for component, app, port in (
                ("web", SERVICE, web_port),
                ("worker", SERVICE, worker_port),
                ("dispatcher", DISPATCHER, dispatcher_port),
            )
        ],
    }
    rules = shortened_rules()
    assert {
        r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r
    } == alert_rules()
    processes = Processes(tmp_path)
    prometheus = Prometheus(binary, tmp_path / "prometheus", prometheus_port, config, {"alerts.yml": rules})

    with ExitStack() as stack:
        stack.callback(redis_proxy.close)
        stack.callback(processes.stop_all)
        processes.start(
            "web",
            [LOGISTICS, "serve", SERVICE, "--port", str(web_port), "--workers", "1", "--threads", "4"],
            env,
        )
        processes.start("worker", [LOGISTICS, "worker", SERVICE, "--health-port", str(worker_port)], env)
        processes.start(
            "dispatcher",
            [LOGISTICS, "dispatcher", DISPATCHER, "--health-port", str(dispatcher_port)],
            dispatcher_env,
        )
        stack.enter_context(running(prometheus))
        try:
            run_the_proof(
                prometheus,
                processes,
                proxy,
                env,
                (web_port, worker_port, dispatcher_port),
                tmp_path,
                (rabbit, namespace),
                (redis_proxy, key_prefix),
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{processes.logs()}\n--- prometheus ---\n{prometheus.log_tail()}"
            ) from None


def run_the_proof(
    prometheus: Prometheus,
    processes: Processes,
    proxy: TcpProxy,
    env: dict[str, str],
    ports: tuple[int, int, int],
    tmp_path: Path,
    bus: tuple[str, str],
    limiter: tuple[TcpProxy, str],
) -> None:
    rabbit, namespace = bus
    redis_proxy, key_prefix = limiter
    web_port, worker_port, dispatcher_port = ports
    for name, port in (("web", web_port), ("worker", worker_port), ("dispatcher", dispatcher_port)):
        poll(functools.partial(ready, port), bool, what=f"{name} ready on :{port}", timeout=WAIT)

    def targets() -> dict[str, str]:
        return {t["labels"]["component"]: t["health"] for t in prometheus.targets()}

    poll(
        targets,
        lambda t: t == {"web": "up", "worker": "up", "dispatcher": "up"},
        what="the three targets up in Prometheus",
    )

    # -- traffic: a warehouse, items, receipts, reservations ----------------------------------------
    settings = make_settings(SERVICE, env[f"LOGISTICS_{SERVICE.upper()}_DATABASE_URL"], tmp_path)
    api = Api(web_port, mint_token(load_keyring(settings), role=Role.ADMIN, subject="prometheus-live"))
    address = {"name": "Main warehouse", "line1": "Dock 1", "city": "Rotterdam", "country": "NL"}
    api.post("/v1/warehouses", {"code": "AMS", "name": "Warehouse AMS", "address": address})
    for sku in ("SKU-1", "SKU-2"):
        item = {"sku": sku, "name": f"Item {sku}", "unit_weight_g": 250, "length_mm": 100}
        api.post("/v1/items", {**item, "width_mm": 50, "height_mm": 20, "reorder_point": 3})
    for n in range(4):
        api.post("/v1/receipts", {"warehouse": "AMS", "sku": f"SKU-{n % 2 + 1}", "quantity": 10})
    for n in range(3):
        line = {"sku": "SKU-1", "quantity": 1}
        api.post("/v1/reservations", {"warehouse": "AMS", "reference": f"SO-{n}", "lines": [line]})
    assert api.call("GET", "/v1/items/NO-SUCH-SKU")[0] == 404
    # What shipping would send: the worker's consumer handles it (consume rate, handler latency).
    lines = [{"sku": "SKU-2", "quantity": 2}]
    data = {"shipment_id": str(uuid.uuid4()), "reference": "S-1", "warehouse": "AMS", "lines": lines}
    publish_event(rabbit, namespace, "shipping", "shipment.requested", data)

    # -- (a) every alert expression evaluates --------------------------------------------------------
    for alert, expr in alert_rules().items():
        answer = prometheus.query(expr)
        assert answer.get("status") == "success", f"{alert}: {expr!r} does not evaluate: {answer}"

    # -- (b) every dashboard panel query evaluates, and returns series by the rule -------------------
    queries = panel_queries()

    def evaluate() -> dict[str, Any]:
        state: dict[str, Any] = {"errors": [], "empty": []}
        for board, title, expr in queries:
            answer = prometheus.query(expr)
            if answer.get("status") != "success":
                state["errors"].append((board, title, expr, answer))
                continue
            for query in required(board, expr):
                result = answer if query == expr else prometheus.query(query)
                if not result.get("data", {}).get("result"):
                    state["empty"].append((board, title, query))
        return state

    # Until every query's rate has two scrapes of the traffic behind it, some are still empty.
    state = poll(
        evaluate,
        lambda s: not s["errors"] and not s["empty"],
        what=f"every one of {len(queries)} dashboard queries to evaluate (and return series by the rule)",
        timeout=WAIT,
    )
    assert not state["errors"]
    # The limiter counted those requests in Redis, under the test's prefix.
    keys = redis.Redis.from_url(REDIS_URL).scan_iter(match=f"*{key_prefix}*", count=1000)
    assert next(keys, None) is not None, f"no rate-limit key under {key_prefix!r} in Redis"

    # -- (c) broker cut: the backlog alert goes pending, fires, and resolves after the heal ----------
    proxy.cut()
    threshold = backlog_threshold()
    rows = threshold + 100
    items = write_csv(
        tmp_path / "items.csv",
        "sku,name,unit_weight_g,length_mm,width_mm,height_mm",
        (f"BULK-{n:05d},Bulk item {n},100,10,10,10" for n in range(rows)),
    )
    counts = write_csv(
        tmp_path / "counts.csv",
        "warehouse,sku,counted",
        (f"AMS,BULK-{n:05d},5" for n in range(rows)),
    )
    for kind, path in (("items", items), ("stock", counts)):
        done = subprocess.run(
            [LOGISTICS, SERVICE, "import", kind, str(path), "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"import {kind} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"

    seen: list[str] = []
    backlog = f'max(logistics_outbox_backlog{{service="{SERVICE}"}})'

    def backlog_state() -> tuple[str, Any]:
        states = alert_states(prometheus, "LogisticsOutboxBacklog")
        state = states[0][0] if states else "inactive"
        if not seen or seen[-1] != state:
            seen.append(state)
        return state, {"states so far": list(seen), backlog: prometheus.query(backlog).get("data")}

    poll(
        backlog_state,
        lambda s: s[0] == "firing",
        what=f"LogisticsOutboxBacklog firing with {rows} unsent rows (threshold {threshold}), broker cut",
        timeout=WAIT,
        every=0.2,
    )
    assert "pending" in seen, f"LogisticsOutboxBacklog fired without being pending first: {seen}"

    proxy.heal()
    poll(
        lambda: alert_states(prometheus, "LogisticsOutboxBacklog"),
        lambda states: not states,
        what="LogisticsOutboxBacklog resolved (gone from /api/v1/alerts) after the proxy healed",
        timeout=WAIT,
    )

    # -- (d) the worker stopped: no worker up, its target down ---------------------------------------
    code = processes.stop("worker")
    assert code == 0, f"the worker exited {code} on SIGTERM"

    def worker_alerts() -> dict[str, str]:
        firing = {}
        for alert in prometheus.alerts():
            labels = alert["labels"]
            if labels.get("app") == SERVICE and labels["alertname"] in (
                "LogisticsNoWorkerUp",
                "LogisticsTargetDown",
            ):
                if labels["alertname"] == "LogisticsTargetDown" and labels.get("component") != "worker":
                    continue
                firing[labels["alertname"]] = alert["state"]
        return firing

    poll(
        worker_alerts,
        lambda a: a == {"LogisticsNoWorkerUp": "firing", "LogisticsTargetDown": "firing"},
        what="LogisticsNoWorkerUp and LogisticsTargetDown (component=worker) firing after SIGTERM",
        timeout=WAIT,
    )
    assert processes.running["web"].poll() is None, "the web process died"

    # -- (e) the dispatcher stopped: no dispatcher up, its target down -------------------------------
    code = processes.stop("dispatcher")
    assert code == 0, f"the dispatcher exited {code} on SIGTERM"

    def dispatcher_alerts() -> dict[str, str]:
        firing = {}
        for alert in prometheus.alerts():
            labels = alert["labels"]
            if labels.get("app") != DISPATCHER:
                continue
            if labels["alertname"] == "LogisticsNoDispatcherUp" or (
                labels["alertname"] == "LogisticsTargetDown" and labels.get("component") == "dispatcher"
            ):
                firing[labels["alertname"]] = alert["state"]
        return firing

    poll(
        dispatcher_alerts,
        lambda a: a == {"LogisticsNoDispatcherUp": "firing", "LogisticsTargetDown": "firing"},
        what="LogisticsNoDispatcherUp and LogisticsTargetDown (component=dispatcher) firing after SIGTERM",
        timeout=WAIT,
    )

    # -- (f) a burst without a token, mostly 429: a large share of the service's requests -----------
    anonymous = Api(web_port, "")
    statuses = [anonymous.call("GET", "/v1/items")[0] for _ in range(2 * ANONYMOUS_QUOTA)]
    # The 429s' and 401s' request series are new: rate() counts a series' increase from its
    # first scrape on, so the rest of the burst waits until Prometheus has scraped them once.
    new_series = f'logistics_http_requests_total{{service="{SERVICE}",status=~"401|429"}}'
    poll(
        lambda: prometheus.query(new_series).get("data", {}).get("result", []),
        lambda result: len(result) >= 2,
        what=f"{new_series} scraped once",
    )
    statuses += [anonymous.call("GET", "/v1/items")[0] for _ in range(ANONYMOUS_BURST - len(statuses))]
    refused = statuses.count(429)
    # Up to two windows' quotas pass (a window may end during the burst), as 401s: no token.
    assert refused >= ANONYMOUS_BURST - 2 * ANONYMOUS_QUOTA, {s: statuses.count(s) for s in set(statuses)}
    assert set(statuses) == {401, 429}, set(statuses)

    share = "sum by (service) (rate(logistics_rate_limited_total[15m]))"
    total = "sum by (service) (rate(logistics_http_requests_total[15m]))"

    def limited_share() -> tuple[dict[str, str], Any]:
        states = {
            labels["service"]: state
            for state, labels in alert_states(prometheus, "LogisticsRateLimitedShareHigh")
        }
        return states, {q: prometheus.query(q).get("data") for q in (share, total)}

    poll(
        limited_share,
        lambda a: a[0] == {SERVICE: "firing"},
        what=f"LogisticsRateLimitedShareHigh firing for {SERVICE} after {refused} 429s",
        timeout=WAIT,
    )

    # -- (g) Redis cut: requests go through unchecked, LogisticsRateLimiterFailingOpen fires -------
    assert alert_states(prometheus, "LogisticsRateLimiterFailingOpen") == [], "failing open before the cut"
    redis_proxy.cut()

    def failing_open() -> dict[str, str]:
        for _ in range(5):
            status, answer = api.call("GET", "/v1/items/SKU-1")
            assert status == 200, f"a request failed while the limiter's Redis is cut: {status} {answer!r}"
        return {
            labels["service"]: state
            for state, labels in alert_states(prometheus, "LogisticsRateLimiterFailingOpen")
        }

    poll(
        failing_open,
        lambda a: a == {SERVICE: "firing"},
        what="LogisticsRateLimiterFailingOpen firing with the limiter's Redis cut",
        timeout=WAIT,
        every=0.1,
    )

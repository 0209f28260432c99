"""The local cluster: horizontal scaling on one machine, under supervisord.

    make cluster          = .venv/bin/python deploy/local/cluster.py up
    make cluster-down     = .venv/bin/python deploy/local/cluster.py down
    deploy/local/cluster.py status | urls | ctl <supervisorctl command...>

``up`` creates (when missing) and migrates one PostgreSQL database per service, starts
supervisord with deploy/local/supervisord.conf, waits until every replica, worker, webhook
dispatcher and both balancers answer, and prints the URLs. supervisord runs the processes; this script only
lays out the ports, the environment and the databases, then hands over.

Per service: LOGISTICS_CLUSTER_WEB_REPLICAS web replicas (default 2) of
LOGISTICS_CLUSTER_WEB_PROCESSES gunicorn processes each (default 2), and
LOGISTICS_CLUSTER_WORKER_REPLICAS workers (default 2); in the services with webhooks
(shipping, support) LOGISTICS_CLUSTER_DISPATCHER_REPLICAS webhook dispatchers (default 1);
nginx and HAProxy in front. Ports, from LOGISTICS_CLUSTER_BASE_PORT (B, default 7000):

    B      nginx              B+1  HAProxy          B+2  HAProxy stats (/stats, /metrics)
    B+10+r inventory web r    B+20+r shipping web   B+30+r support web
    B+40+r inventory worker r B+50+r shipping worker  B+60+r support worker   (health, /metrics)
    B+70+r shipping dispatcher r   B+80+r support dispatcher r                (health, /metrics)

The machine's services, unless the environment says otherwise:
``LOGISTICS_<SVC>_DATABASE_URL`` (postgresql://postgres@127.0.0.1:5432/cluster_<svc>),
``LOGISTICS_BROKER_URL`` (amqp://guest:guest@127.0.0.1:5672//), ``LOGISTICS_REDIS_URL``
(redis://127.0.0.1:6379/0; the rate limiter counts there too, under
``LOGISTICS_RATE_LIMIT_KEY_PREFIX``, default ``<namespace>-ratelimit``), ``LOGISTICS_BUS_NAMESPACE``
(cluster), ``LOGISTICS_WEB_FORWARDED_ALLOW_IPS`` (127.0.0.1, the balancers), ``LOGISTICS_JWT_SECRET``
and ``LOGISTICS_SECRETS_KEY`` (each generated once into the cluster directory,
LOGISTICS_CLUSTER_DIR, default var/cluster).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONF = HERE / "supervisord.conf"
BIN = Path(sys.executable).parent
MAX_REPLICAS = 10
#: Offsets from the base port: the balancers, then a block of MAX_REPLICAS per program.
NGINX, HAPROXY, HAPROXY_STATS = 0, 1, 2
WEB_BLOCK, WORKER_BLOCK = 1, 4  # web of the i-th service at B + 10*(1+i), its workers at B + 10*(4+i)
#: The j-th service with webhooks has its dispatchers at B + 10*(7+j).
DISPATCHER_BLOCK = 7


def services() -> dict[str, int]:
    """Each installed service's default port, in port order (inventory, shipping, support)."""
    from logistics_shared.service import discover

    return dict(sorted(((name, spec.port) for name, spec in discover().items()), key=lambda kv: kv[1]))


def webhook_services() -> list[str]:
    """The services with webhook subscriptions (their metadata has the webhook tables), in port
    order: each runs `logistics dispatcher <svc>`."""
    from logistics_shared.service import discover

    found = sorted(discover().items(), key=lambda kv: kv[1].port)
    return [name for name, spec in found if "webhook_endpoints" in spec.metadata().tables]


def count(environ: dict[str, str], name: str, default: int) -> int:
    value = int(environ.get(name, default))
    if not 1 <= value <= MAX_REPLICAS:
        raise SystemExit(f"{name}={value}: must be 1..{MAX_REPLICAS}")
    return value


class Layout:
    """Ports and addresses, from the environment: the one place the cluster's shape is decided."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.base = int(environ.get("LOGISTICS_CLUSTER_BASE_PORT", "7000"))
        self.web_replicas = count(environ, "LOGISTICS_CLUSTER_WEB_REPLICAS", 2)
        self.web_processes = int(environ.get("LOGISTICS_CLUSTER_WEB_PROCESSES", "2"))
        self.worker_replicas = count(environ, "LOGISTICS_CLUSTER_WORKER_REPLICAS", 2)
        self.dispatcher_replicas = count(environ, "LOGISTICS_CLUSTER_DISPATCHER_REPLICAS", 1)
        self.services = list(services())
        self.webhook_services = webhook_services()
        if len(self.services) > 3:
            raise SystemExit("the port layout has room for three services")
        if len(self.webhook_services) > 2:
            raise SystemExit("the port layout has room for two services with webhooks")

    def web_ports(self, svc: str) -> list[int]:
        first = self.base + 10 * (WEB_BLOCK + self.services.index(svc))
        return [first + r for r in range(self.web_replicas)]

    def worker_ports(self, svc: str) -> list[int]:
        first = self.base + 10 * (WORKER_BLOCK + self.services.index(svc))
        return [first + r for r in range(self.worker_replicas)]

    def dispatcher_ports(self, svc: str) -> list[int]:
        """The health ports of ``svc``'s webhook dispatchers (none where it has no webhooks)."""
        if svc not in self.webhook_services:
            return []
        first = self.base + 10 * (DISPATCHER_BLOCK + self.webhook_services.index(svc))
        return [first + r for r in range(self.dispatcher_replicas)]

    @property
    def nginx(self) -> int:
        return self.base + NGINX

    @property
    def haproxy(self) -> int:
        return self.base + HAPROXY

    @property
    def haproxy_stats(self) -> int:
        return self.base + HAPROXY_STATS

    def all_ports(self) -> list[int]:
        ports = [self.nginx, self.haproxy, self.haproxy_stats]
        for svc in self.services:
            ports += self.web_ports(svc) + self.worker_ports(svc) + self.dispatcher_ports(svc)
        return ports


def cluster_dir(environ: dict[str, str]) -> Path:
    return Path(environ.get("LOGISTICS_CLUSTER_DIR", str(ROOT / "var" / "cluster"))).resolve()


def executable(name: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if not found:
        raise SystemExit(f"{name} is not installed (apt-get install {name})")
    return found


def environment(layout: Layout, directory: Path) -> dict[str, str]:
    """What supervisord (and so every process) and the CLI get."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    for svc in layout.services:
        env.setdefault(
            f"LOGISTICS_{svc.upper()}_DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/cluster_{svc}"
        )
    env.setdefault("LOGISTICS_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    env.setdefault("LOGISTICS_REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("LOGISTICS_BUS_NAMESPACE", "cluster")
    # The rate limiter counts in the machine's Redis, under keys of this cluster's own (the
    # namespace's: a test cluster's differs from `make cluster`'s), so the replicas share one
    # budget per caller and nothing else on the machine spends it; the balancers are on
    # 127.0.0.1, so their X-Forwarded-For is believed from there only.
    env.setdefault("LOGISTICS_RATE_LIMIT_KEY_PREFIX", f"{env['LOGISTICS_BUS_NAMESPACE']}-ratelimit")
    env.setdefault("LOGISTICS_WEB_FORWARDED_ALLOW_IPS", "127.0.0.1")
    if not env.get("LOGISTICS_JWT_SECRET"):
        secret = directory / "jwt-secret"
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(48) + "\n")
            secret.chmod(0o600)
        env["LOGISTICS_JWT_SECRET"] = secret.read_text().strip()
    if not env.get("LOGISTICS_SECRETS_KEY"):
        # The Fernet key of stored secrets, made once like the JWT secret.
        from cryptography.fernet import Fernet

        key = directory / "secrets-key"
        if not key.exists():
            key.write_text(Fernet.generate_key().decode() + "\n")
            key.chmod(0o600)
        env["LOGISTICS_SECRETS_KEY"] = key.read_text().strip()
    env["LOGISTICS_VAR_DIR"] = str(directory)
    env.update(
        LOGISTICS_CLUSTER_DIR=str(directory),
        LOGISTICS_CLUSTER_ROOT=str(ROOT),
        LOGISTICS_CLUSTER_WEB_REPLICAS=str(layout.web_replicas),
        LOGISTICS_CLUSTER_WEB_PROCESSES=str(layout.web_processes),
        LOGISTICS_CLUSTER_WORKER_REPLICAS=str(layout.worker_replicas),
        LOGISTICS_CLUSTER_DISPATCHER_REPLICAS=str(layout.dispatcher_replicas),
        LOGISTICS_CLUSTER_AUTORESTART=env.get("LOGISTICS_CLUSTER_AUTORESTART", "true"),
        LOGISTICS_CLUSTER_NGINX_PORT=str(layout.nginx),
        LOGISTICS_CLUSTER_HAPROXY_PORT=str(layout.haproxy),
        # The balancers' templates (deploy/render.sh): listen addresses and upstream lists.
        LOGISTICS_LB_NGINX_LISTEN=f"127.0.0.1:{layout.nginx}",
        LOGISTICS_LB_HAPROXY_BIND=f"127.0.0.1:{layout.haproxy}",
        LOGISTICS_LB_HAPROXY_STATS_BIND=f"127.0.0.1:{layout.haproxy_stats}",
        LOGISTICS_LB_HAPROXY_SLOTS="1",
        LOGISTICS_LB_RUN_DIR=str(directory / "run"),
    )
    for svc in layout.services:
        upper = svc.upper()
        env[f"LOGISTICS_CLUSTER_{upper}_WEB_PORT"] = str(layout.web_ports(svc)[0])
        env[f"LOGISTICS_CLUSTER_{upper}_WORKER_PORT"] = str(layout.worker_ports(svc)[0])
        if layout.dispatcher_ports(svc):
            env[f"LOGISTICS_CLUSTER_{upper}_DISPATCHER_PORT"] = str(layout.dispatcher_ports(svc)[0])
        env[f"LOGISTICS_LB_{upper}_SERVERS"] = " ".join(f"127.0.0.1:{p}" for p in layout.web_ports(svc))
    return env


def supervisord_pid(directory: Path) -> int | None:
    try:
        pid = int((directory / "supervisord.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def ctl(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(CONF), *args],
        env=env,
        text=True,
        capture_output=True,
        check=check,
    )


def ensure_database(url: str) -> None:
    """Create the database of ``url`` if it does not exist (its server must be reachable)."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [target.database]
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database or "")))
                print(f"created database {target.database}", file=sys.stderr)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach PostgreSQL for {target.database}: {exc}") from None


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def endpoints(layout: Layout) -> list[tuple[str, str]]:
    """(what, URL) of everything that must answer 200 before the cluster is up."""
    checks = []
    for svc in layout.services:
        checks += [(f"{svc} web :{p}", f"http://127.0.0.1:{p}/readyz") for p in layout.web_ports(svc)]
        checks += [(f"{svc} worker :{p}", f"http://127.0.0.1:{p}/readyz") for p in layout.worker_ports(svc)]
        checks += [
            (f"{svc} dispatcher :{p}", f"http://127.0.0.1:{p}/readyz") for p in layout.dispatcher_ports(svc)
        ]
        checks += [
            (f"nginx -> {svc}", f"http://127.0.0.1:{layout.nginx}/{svc}/readyz"),
            (f"haproxy -> {svc}", f"http://127.0.0.1:{layout.haproxy}/{svc}/readyz"),
        ]
    return checks


def up() -> int:
    layout = Layout(dict(os.environ))
    directory = cluster_dir(dict(os.environ))
    if supervisord_pid(directory):
        raise SystemExit(f"the cluster in {directory} is already running (make cluster-down stops it)")
    busy = []
    for port in layout.all_ports():
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    if busy:
        raise SystemExit(f"ports in use: {busy} (LOGISTICS_CLUSTER_BASE_PORT moves the whole block)")
    for sub in ("logs", "run"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # nginx writes a request body beyond client_body_buffer_size (an import's CSV upload) to
    # run/nginx-client-body from its worker processes, which are nobody when started as root.
    (directory / "run").chmod(0o1777)
    env = environment(layout, directory)
    env["LOGISTICS_CLUSTER_NGINX"] = executable("nginx")
    env["LOGISTICS_CLUSTER_HAPROXY"] = executable("haproxy")
    for svc in layout.services:
        ensure_database(env[f"LOGISTICS_{svc.upper()}_DATABASE_URL"])
        done = subprocess.run(
            [str(BIN / "logistics"), "migrate", svc], env=env, text=True, capture_output=True
        )
        if done.returncode != 0:
            raise SystemExit(f"logistics migrate {svc} failed:\n{done.stderr.strip()}")
    subprocess.run([str(BIN / "supervisord"), "-c", str(CONF)], env=env, check=True)
    pending = endpoints(layout)
    deadline = time.monotonic() + float(os.environ.get("LOGISTICS_CLUSTER_START_TIMEOUT", "120"))
    while pending and time.monotonic() < deadline:
        pending = [(what, url) for what, url in pending if not answers(url)]
        if pending:
            time.sleep(0.25)
    if pending:
        print("cluster: not ready: " + ", ".join(what for what, _ in pending), file=sys.stderr)
        print(ctl(env, "status", check=False).stdout, file=sys.stderr)
        ctl(env, "shutdown", check=False)
        print(f"logs: {directory / 'logs'}", file=sys.stderr)
        return 1
    print_urls(layout, directory)
    return 0


def print_urls(layout: Layout, directory: Path) -> None:
    replicas = ", ".join(
        f"{svc} {' '.join(str(p) for p in layout.web_ports(svc))}" for svc in layout.services
    )
    workers = ", ".join(
        f"{svc} {' '.join(str(p) for p in layout.worker_ports(svc))}" for svc in layout.services
    )
    dispatchers = ", ".join(
        f"{svc} {' '.join(str(p) for p in layout.dispatcher_ports(svc))}" for svc in layout.webhook_services
    )
    print(
        f"""cluster up ({layout.web_replicas} web replicas x {layout.web_processes} processes and \
{layout.worker_replicas} workers per service, {layout.dispatcher_replicas} webhook dispatcher(s) \
per service with webhooks):
  nginx          http://127.0.0.1:{layout.nginx}/          e.g. /v1/stock, /inventory/readyz
  HAProxy        http://127.0.0.1:{layout.haproxy}/          stats http://127.0.0.1:{layout.haproxy_stats}/stats
  web replicas   {replicas}   (/metrics on each)
  workers        {workers}   (/readyz, /metrics)
  dispatchers    {dispatchers}   (/readyz, /metrics)
  token          LOGISTICS_JWT_SECRET="$(cat {directory}/jwt-secret)" .venv/bin/logistics token --role admin
  processes      .venv/bin/python deploy/local/cluster.py status   (ctl <supervisorctl command> for more)
  logs           {directory}/logs/
  stop           make cluster-down"""
    )


def down() -> int:
    directory = cluster_dir(dict(os.environ))
    pid = supervisord_pid(directory)
    if pid is None:
        print(f"cluster: not running ({directory})")
        return 0
    env = environment(Layout(dict(os.environ)), directory)
    ctl(env, "shutdown", check=False)
    deadline = time.monotonic() + 90
    while supervisord_pid(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    if supervisord_pid(directory):
        print(f"cluster: supervisord {pid} still running after 90 s", file=sys.stderr)
        return 1
    print("cluster: stopped")
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "up":
        return up()
    if command == "down":
        return down()
    directory = cluster_dir(dict(os.environ))
    if command in {"status", "ctl"}:
        if supervisord_pid(directory) is None:
            print(f"cluster: not running ({directory})")
            return 1 if command == "ctl" else 0
        env = environment(Layout(dict(os.environ)), directory)
        done = ctl(env, *(argv[2:] if command == "ctl" else ["status"]), check=False)
        print(done.stdout, end="")
        print(done.stderr, end="", file=sys.stderr)
        return done.returncode
    if command == "urls":
        print_urls(Layout(dict(os.environ)), directory)
        return 0
    print(f"usage: {argv[0]} up|down|status|urls|ctl <supervisorctl command...>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

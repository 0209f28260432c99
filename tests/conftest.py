"""Fixtures shared by every test package.

Databases: SQLite tests copy a file migrated once per session; PostgreSQL
tests get a fresh database cloned from a migrated template (``CREATE DATABASE
... TEMPLATE``), one template per xdist worker, so tests never share rows and
the append-only ledger never has to be truncated.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from kombu import Connection
from webtest import TestApp

from logistics_shared.identity import Role
from logistics_shared.migrations import upgrade
from logistics_shared.security import load_keyring, mint_token
from logistics_shared.service import ServiceSpec, discover
from logistics_shared.settings import Settings, load_settings

from .helpers.proxy import TcpProxy
from .helpers.transactional import in_transaction
from .services import AMQP_URL, PG_URL, need_postgres, need_service

hypothesis_settings.register_profile("ci", max_examples=25, stateful_step_count=20, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=60, stateful_step_count=30, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

JWT_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
#: A Fernet key for stored secrets (required off SQLite, like the JWT secret); a test's own only.
SECRETS_KEY = "GU26lFbfKixg_lcP_tBtnKWHyzdPM9P56Ot9_tf1K5I="
_counter = itertools.count()


def _admin_conninfo() -> str:
    return PG_URL.replace("postgresql://", "postgresql://", 1).rstrip("/") + "/postgres"


def _pg(sql: str) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def worker_tag(worker_id: str) -> str:
    return f"{worker_id}_{os.getpid()}"


@pytest.fixture(scope="session")
def specs() -> dict[str, ServiceSpec]:
    return discover()


def make_settings(service: str, database_url: str, var_dir: Path, **extra: Any) -> Settings:
    ini = {
        "database_url": database_url,
        "jwt_secret": JWT_SECRET,
        "secrets_key": SECRETS_KEY,
        "var_dir": str(var_dir),
        "log_level": "WARNING",
        "access_log": "false",
        "db_pool_size": "20",
        # The limiter stays on (every API test goes through it), with the role quotas per second
        # instead of per minute: far above what any test sends, so the suite is never throttled.
        # Its own key prefix per app: an app given a Redis URL shares no budget by accident.
        "rate_limit_window_seconds": "1",
        "rate_limit_key_prefix": f"lt-{uuid.uuid4().hex[:12]}",
        **{k: str(v) for k, v in extra.items()},
    }
    return load_settings(service, ini, environ={})


class SqliteTemplates:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[str, Path] = {}

    def get(self, spec: ServiceSpec) -> Path:
        if spec.name not in self.done:
            path = self.root / f"{spec.name}-template.sqlite3"
            upgrade(spec, make_settings(spec.name, f"sqlite:///{path}", self.root))
            self.done[spec.name] = path
        return self.done[spec.name]


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("sqlite-templates"))


class PostgresTemplates:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.done: dict[str, str] = {}

    def get(self, spec: ServiceSpec) -> str:
        if spec.name not in self.done:
            name = f"lt_{spec.name}_{self.tag}_tpl"
            _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg(f'CREATE DATABASE "{name}"')
            upgrade(spec, make_settings(spec.name, f"{PG_URL}/{name}", Path("/tmp")))
            self.done[spec.name] = name
        return self.done[spec.name]

    def drop_all(self) -> None:
        for name in self.done.values():
            _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_templates(worker_tag: str) -> Iterator[PostgresTemplates]:
    templates = PostgresTemplates(worker_tag)
    yield templates
    templates.drop_all()


@pytest.fixture
def database_factory(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_templates: SqliteTemplates, worker_tag: str
) -> Iterator[Callable[[ServiceSpec, str], str]]:
    """``make(spec, backend)`` -> URL of a fresh, migrated database for this test."""
    created: list[str] = []

    def make(spec: ServiceSpec, backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path / f"{spec.name}-{next(_counter)}.sqlite3"
            shutil.copy(sqlite_templates.get(spec), path)
            return f"sqlite:///{path}"
        need_postgres()
        template = request.getfixturevalue("pg_templates").get(spec)
        name = f"lt_{spec.name}_{worker_tag}_{next(_counter)}"
        _pg(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        created.append(name)
        return f"{PG_URL}/{name}"

    yield make
    for name in created:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Client:
    """A WebTest app plus the means to act as any role."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.wsgi = app
        self.settings = settings
        self.registry = app.registry
        self.keyring = load_keyring(settings)

    def token(
        self, role: Role | str = Role.ADMIN, warehouses: tuple[str, ...] = (), subject: str = ""
    ) -> str:
        role = Role(role)
        return mint_token(self.keyring, role=role, subject=subject or f"test-{role}", warehouses=warehouses)

    def as_(self, role: Role | str = Role.ADMIN, *warehouses: str, subject: str = "") -> TestApp:
        token = self.token(role, warehouses, subject)
        return TestApp(self.wsgi, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {token}"})

    @property
    def anonymous(self) -> TestApp:
        return TestApp(self.wsgi)

    @property
    def engine(self) -> Any:
        return self.registry["dbengine"]


class WorkerApps:
    """One migrated database and one app per (service, backend) for this xdist worker."""

    def __init__(self, root: Path, tag: str, request: pytest.FixtureRequest) -> None:
        self.root, self.tag, self.request = root, tag, request
        self.apps: dict[tuple[str, str], tuple[Any, Settings]] = {}
        self.databases: list[str] = []

    def get(self, spec: ServiceSpec, backend: str) -> tuple[Any, Settings]:
        key = (spec.name, backend)
        if key not in self.apps:
            if backend == "sqlite":
                path = self.root / f"{spec.name}-shared.sqlite3"
                shutil.copy(self.request.getfixturevalue("sqlite_templates").get(spec), path)
                url = f"sqlite:///{path}"
            else:
                need_postgres()
                template = self.request.getfixturevalue("pg_templates").get(spec)
                name = f"lt_{spec.name}_{self.tag}_shared"
                _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                _pg(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                self.databases.append(name)
                url = f"{PG_URL}/{name}"
            settings = make_settings(spec.name, url, self.root)
            self.apps[key] = (spec.configure(settings).make_wsgi_app(), settings)
        return self.apps[key]

    def close(self) -> None:
        for app, _settings in self.apps.values():
            app.registry["dbengine"].dispose()
        for name in self.databases:
            _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def worker_apps(
    tmp_path_factory: pytest.TempPathFactory, worker_tag: str, request: pytest.FixtureRequest
) -> Iterator[WorkerApps]:
    apps = WorkerApps(tmp_path_factory.mktemp("worker-apps"), worker_tag, request)
    yield apps
    apps.close()


@pytest.fixture
def service_client(
    database_factory: Callable[[ServiceSpec, str], str],
    specs: dict[str, ServiceSpec],
    tmp_path: Path,
    worker_apps: WorkerApps,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Client]]:
    """``make(name, backend="sqlite", **settings)`` -> a :class:`Client`.

    By default the worker's app for that service and backend, inside this test's
    transaction (rolled back at the end: see tests/helpers/transactional.py). With
    settings of its own, a second client of the same service, or in a test marked
    ``fresh_app`` (other connections, threads, workers), a fresh database cloned from
    the migrated template and an app of its own, as real commits need.
    """
    engines = []
    taken: set[tuple[str, str]] = set()
    fresh = request.node.get_closest_marker("fresh_app") is not None
    with ExitStack() as stack:

        def make(name: str, backend: str = "sqlite", **extra: Any) -> Client:
            spec = specs[name]
            if not extra and not fresh and (name, backend) not in taken:
                taken.add((name, backend))
                app, settings = worker_apps.get(spec, backend)
                cache = app.registry.get("tracking_cache")
                if cache is not None:
                    cache.reset_local()  # the app outlives the test; its cache must not
                stack.enter_context(in_transaction(app.registry, app.registry["dbengine"]))
                return Client(app, settings)
            settings = make_settings(name, database_factory(spec, backend), tmp_path, **extra)
            app = spec.configure(settings).make_wsgi_app()
            engines.extend({app.registry["dbengine"], app.registry["dbengine_read"]})
            return Client(app, settings)

        yield make
    for engine in engines:
        engine.dispose()


# --- the bus: the machine's RabbitMQ, a namespace of the test's own, a proxy to cut -------------
# Every test gets its own bus namespace (exchange and queue prefix), so tests never see
# each other's messages, and deletes what it declared afterwards.


@pytest.fixture
def rabbit() -> str:
    need_service("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


@pytest.fixture
def namespace(rabbit: str) -> Iterator[str]:
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    _delete_namespace(rabbit, ns)


def _delete_namespace(url: str, ns: str) -> None:
    """Delete every queue and exchange named with the test's prefix."""
    import subprocess

    try:
        out = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
        exchanges = subprocess.run(
            ["rabbitmqctl", "-q", "list_exchanges", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return
    with Connection(url) as conn:
        channel = conn.channel()
        for name in out:
            if name.startswith(ns + "."):
                channel.queue_delete(name)
        for name in exchanges:
            if name.startswith(ns + "."):
                channel.exchange_delete(name)


@pytest.fixture
def proxy(rabbit: str) -> Iterator[TcpProxy]:
    p = TcpProxy("127.0.0.1", 5672)
    yield p
    p.close()


#: Fixtures that put a test on a database through the app (an API test).
_API_FIXTURES = {"service_client", "database_factory", "worker_apps"}
_BROKER_FIXTURES = {"rabbit", "namespace", "tap", "private_broker", "everything"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers for the kind of test and the real services it needs, so that
    ``pytest -m "not e2e and not fault"`` is a quick loop and ``-m postgres`` selects
    what needs PostgreSQL. e2e and fault are set by their modules; the rest here."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres" in params.values() or "postgres" in item.name:
            item.add_marker(pytest.mark.postgres)
        if names & _BROKER_FIXTURES:
            item.add_marker(pytest.mark.rabbitmq)
        if item.get_closest_marker("e2e") or item.get_closest_marker("fault"):
            continue
        item.add_marker(pytest.mark.api if names & _API_FIXTURES else pytest.mark.unit)

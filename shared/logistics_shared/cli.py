"""``logistics``: one CLI for every installed service (entry point ``logistics.services``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

import click

from .security import Role, TokenLifetimeTooLong, load_keyring, mint_token, parse_duration
from .service import ServiceSpec, discover
from .settings import Settings, SettingsError, load_settings

log = logging.getLogger("logistics.cli")


def _services() -> dict[str, ServiceSpec]:
    return discover()


def _spec(name: str) -> ServiceSpec:
    services = _services()
    if name not in services:
        known = ", ".join(services) or "none installed"
        raise click.BadParameter(f"unknown service {name!r} (installed: {known})", param_hint="SERVICE")
    return services[name]


def _token_settings() -> Settings:
    """The settings tokens are minted with: the JWT ones are shared by every service, and
    where no secret is set the embedded default generates one under the var directory
    whichever service's database decides that; so any installed service will do (the
    shared library names none)."""
    installed = next(iter(_services()), None)
    return load_settings(installed or "logistics")


def _settings(spec: ServiceSpec, **ini: Any) -> Settings:
    try:
        return load_settings(spec.name, ini)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


class ServiceGroup(click.Group):
    """Adds each installed service's own commands (``logistics inventory import``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name, spec in _services().items() if spec.cli)
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        spec = _services().get(name)
        return spec.cli() if spec and spec.cli else None


@click.group(cls=ServiceGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run, migrate and operate the logistics services."""


def make_app(spec: ServiceSpec, settings: Settings, *, web: bool = True) -> Any:
    """The service's WSGI app from its ``configure()``; ``web=False`` for worker processes.

    A web process reads its JWT keys (and, where secrets are stored, the secrets key) now,
    so a missing or bad key stops it at start; a worker never verifies a token and needs
    none (the keys are read on first use).
    """
    from pyramid.interfaces import ISecurityPolicy

    from .logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    try:
        app = spec.configure(settings).make_wsgi_app()
        if web:
            app.registry.queryUtility(ISecurityPolicy).keyring  # noqa: B018 - loads the keys
            if _stores_secrets(app.registry):
                # A web replica without it would answer 500 at its first carrier or webhook.
                app.registry["logistics.secretbox"].load()
        return app
    except SettingsError as exc:
        # Some settings are only checked where they are used (the JWT secret, inside
        # configure()): still the operator's mistake, so one line, not a traceback.
        raise click.ClickException(str(exc)) from None


def _stores_secrets(registry: Any) -> bool:
    """Whether the service keeps secrets it must open (webhook endpoints; shipping's carriers)."""
    return registry["logistics.platform_tables"].webhooks is not None


def paste_app(spec: ServiceSpec, ini: Mapping[str, Any]) -> Any:
    """Body of every service's PasteDeploy ``main()`` (``pserve services/<svc>/development.ini``).

    pserve prints a traceback for anything the app factory raises; a missing or
    malformed setting ends the process instead with the one line ``logistics
    serve`` prints (``SystemExit``, status 1).
    """
    try:
        return make_app(spec, load_settings(spec.name, ini))
    except SettingsError as exc:
        raise SystemExit(f"Error: {exc}") from None
    except click.ClickException as exc:
        raise SystemExit(f"Error: {exc.format_message()}") from None


def _waitress_limits(settings: Settings) -> dict[str, Any]:
    """waitress adjustments for every server we start (``serve``, ``up``, the worker's health port).

    pserve builds its server from ``[server:main]`` instead; each development.ini
    repeats these values (tests/shared/test_waitress_limits.py keeps them equal).
    """
    return {
        # Far above the app's own cap, so the app answers 413 as problem+json and
        # waitress's plain-text 413 only guards against absurd bodies.
        # A service with an upload endpoint names its largest upload (``max_upload_bytes`` of
        # its own settings: inventory's imports); the cap stays above that too.
        "max_request_body_size": max(
            settings.max_body_bytes * 16,
            16 * 1024 * 1024,
            getattr(settings.own, "max_upload_bytes", 0) + 1024 * 1024,
        ),
        # A client that never finishes its headers holds a connection (not a thread) until the
        # channel timeout; at waitress's 100 connections / 120 s, ~100 such clients make a
        # replica unreachable for everyone else.
        "connection_limit": settings.waitress_connection_limit,
        "channel_timeout": settings.waitress_channel_timeout,
        "cleanup_interval": settings.waitress_cleanup_interval,
        # select() cannot watch a descriptor above 1023, which that many connections reach.
        "asyncore_use_poll": True,
    }


def _allow_open_files(settings: Settings, servers: int = 1) -> None:
    """Raise the soft open-files limit towards what the connection limit needs (up to the hard one).

    A shell's soft limit is often 1024: below ``connection_limit`` connections,
    accept() would fail with EMFILE and the limit would be a fiction.
    """
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to raise
        return
    # Headroom for the database pool, log files, the listening sockets and buffered bodies.
    needed = servers * settings.waitress_connection_limit + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        log.warning(
            "open-files limit %d is below the %d that LOGISTICS_WAITRESS_CONNECTION_LIMIT=%d needs",
            target,
            needed,
            settings.waitress_connection_limit,
        )


def _check_free(host: str, port: int) -> None:
    """One line for a port in use (gunicorn would retry for seconds and print several)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as gunicorn sets it: a socket in TIME_WAIT is not "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _create_server(app: Any, host: str, port: int, **adjustments: Any) -> Any:
    from waitress.server import create_server

    try:
        return create_server(app, host=host, port=port, **adjustments)
    except OSError as exc:
        # "Address already in use" is an operator's everyday mistake, not a bug.
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@main.command()
@click.argument("service")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: the service's own).")
@click.option(
    "--server",
    "server_kind",
    type=click.Choice(["gunicorn", "waitress"]),
    default="gunicorn",
    show_default=True,
    help="gunicorn: one process per core (production, behind nginx/HAProxy); waitress: one process.",
)
@click.option("--workers", type=int, default=None, help="gunicorn processes (default LOGISTICS_WEB_WORKERS).")
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Threads per process (gunicorn: LOGISTICS_WEB_THREADS; waitress: 8).",
)
def serve(
    service: str, host: str, port: int | None, server_kind: str, workers: int | None, threads: int | None
) -> None:
    """Run one service's web process: gunicorn (default) or waitress.

    SIGTERM stops accepting, lets requests in flight finish (at most
    LOGISTICS_WEB_GRACEFUL_TIMEOUT seconds) and exits 0.
    """
    spec = _spec(service)
    settings = _settings(spec)
    port = port or spec.port
    if server_kind == "gunicorn":
        from pathlib import Path

        from .web.gunicorn_server import MULTIPROC_ENV, prepare_multiprocess_metrics
        from .web.gunicorn_server import run as run_gunicorn

        # Before the app (and its metrics) exist: one directory per server, emptied now.
        directory = os.environ.get(MULTIPROC_ENV) or str(
            Path(settings.var_dir).resolve() / "prometheus" / f"{spec.name}-{port}"
        )
        prepare_multiprocess_metrics(Path(directory))
        app = make_app(spec, settings)
        _check_free(host, port)
        click.echo(f"{spec.name} listening on http://{host}:{port} (gunicorn)", err=True)
        run_gunicorn(app, settings, f"{host}:{port}", workers, threads)
        return
    from .web.waitress_server import serve_until_sigterm

    app = make_app(spec, settings)
    _allow_open_files(settings)
    server = _create_server(
        app, host, port, threads=threads or 8, ident=f"logistics-{spec.name}", **_waitress_limits(settings)
    )
    click.echo(f"{spec.name} listening on http://{host}:{port} (waitress)", err=True)
    serve_until_sigterm(server, settings.web_graceful_timeout)


@main.command()
@click.argument("service")
@click.option("--revision", default="head", show_default=True, help="Target Alembic revision.")
def migrate(service: str, revision: str) -> None:
    """Upgrade a service's database to the latest (or a given) revision."""
    spec = _spec(service)
    _upgrade(spec, _settings(spec), revision)
    click.echo(f"{spec.name}: migrated to {revision}")


@main.command("wait-for-schema")
@click.argument("service")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait at most.")
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between checks.")
def wait_for_schema(service: str, timeout: float, interval: float) -> None:
    """Exit 0 once the service's database is at (or past) this code's migration head.

    For an initContainer: a pod waits for the migrate Job rather than starting on
    an older schema; exits 1 naming the current and expected revisions on timeout.
    """
    from .migrations import wait_for_schema as wait

    spec = _spec(service)
    migrated, state, error = wait(spec, _settings(spec), timeout, interval)
    if migrated and state is not None:
        click.echo(f"{spec.name}: schema at {state.current} (head {state.head})", err=True)
        return
    current = state.current if state else "unknown"
    head = state.head if state else "unknown"
    reason = f"; last error: {error}" if error else ""
    raise click.ClickException(
        f"{spec.name}: database at revision {current}, this code expects {head} (waited {timeout:g}s){reason}"
    )


def _upgrade(spec: ServiceSpec, settings: Settings, revision: str = "head") -> None:
    from sqlalchemy.exc import DBAPIError

    from .migrations import upgrade
    from .settings import env_name, spec_for

    try:
        upgrade(spec, settings, revision)
    except DBAPIError as exc:
        # Unreachable, refused credentials, no such database: say which setting to look at.
        name = env_name(spec_for("database_url"), spec.name)
        raise click.ClickException(
            f"cannot migrate the {spec.name} database ({name}): {_one_line(exc.orig or exc)}"
        ) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__


@main.command()
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--warehouse", "warehouses", multiple=True, help="Warehouse code (staff); repeatable.")
@click.option("--subject", default=None, help="The `sub` claim (default: the role name).")
@click.option(
    "--ttl",
    default="8h",
    show_default=True,
    help="Lifetime: 90s, 15m, 8h, 1d; at most LOGISTICS_JWT_MAX_TTL_SECONDS (default 24h).",
)
def token(role: str, warehouses: tuple[str, ...], subject: str | None, ttl: str) -> None:
    """Print a signed bearer token (uses the same settings as the services)."""
    try:
        seconds = parse_duration(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if role == Role.WAREHOUSE_STAFF and not warehouses:
        raise click.BadParameter("warehouse staff need at least one --warehouse", param_hint="--warehouse")
    try:
        keyring = load_keyring(_token_settings())
        click.echo(
            mint_token(
                keyring, role=Role(role), subject=subject or role, warehouses=warehouses, ttl_seconds=seconds
            )
        )
    except TokenLifetimeTooLong as exc:
        raise click.BadParameter(f"{ttl}: {exc}", param_hint="--ttl") from None
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("service")
@click.option("--consumers", type=int, default=1, show_default=True, help="Consumer connections (threads).")
@click.option("--no-relay", is_flag=True, help="Do not run the outbox relay in this replica.")
@click.option(
    "--health-host", default="127.0.0.1", show_default=True, help="Interface of the health endpoint."
)
@click.option("--health-port", type=int, default=None, help="Health/metrics port (default: web port + 100).")
def worker(service: str, consumers: int, no_relay: bool, health_host: str, health_port: int | None) -> None:
    """Run one service's worker: outbox relay, event consumers, periodic tasks.

    SIGTERM (or Ctrl-C) stops taking new work and lets in-flight messages finish.
    """
    from .bus.worker import Worker

    # Before anything answers: a SIGTERM from the moment /healthz is up (an orchestrator
    # stopping a pod it just saw start) must stop the worker cleanly, not kill it with the
    # default action (tests/shared/test_keyring_processes.py saw exit -15 once).
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spec = _spec(service)
    settings = _settings(spec)
    app = make_app(spec, settings, web=False)
    runner = Worker(spec, settings, app.registry, relay=not no_relay, consumers=consumers)
    port = health_port or settings.worker_health_port or spec.port + 100
    # The same limits as the web port: probes and scrapes must get through a flood of slow clients.
    _allow_open_files(settings)
    health = _create_server(runner.health_app(), health_host, port, threads=2, **_waitress_limits(settings))
    threading.Thread(target=health.run, name="worker-health", daemon=True).start()
    runner.start()
    click.echo(f"{spec.name} worker running; health on http://{health_host}:{port}/readyz", err=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    click.echo(f"{spec.name} worker stopping (finishing in-flight work)", err=True)
    runner.shutdown()
    health.close()


def event_map(services: dict[str, ServiceSpec]) -> list[tuple[str, str, list[str]]]:
    """(producer, event type, consumers as ``service.handler``) for every event of the
    contracts, from the installed services' subscription tables."""
    from .events.registry import REGISTRY

    consumers: dict[str, list[str]] = {}
    for name, spec in services.items():
        for handler in spec.handlers() if spec.handlers else ():
            for event_type in handler.events:
                consumers.setdefault(event_type, []).append(f"{name}.{handler.name}")
    return [
        (REGISTRY.producer_of(t), t, sorted(consumers.get(t, [])))
        for t in sorted(REGISTRY.types(), key=lambda t: (REGISTRY.producer_of(t), t))
    ]


def event_map_markdown(services: dict[str, ServiceSpec]) -> str:
    lines = ["| producer | event | consumers (service.handler = its queue) |", "|---|---|---|"]
    for producer, event_type, consumers in event_map(services):
        shown = ", ".join(f"`{c}`" for c in consumers) or "none yet"
        lines.append(f"| {producer} | `{event_type}` | {shown} |")
    return "\n".join(lines)


@main.command()
@click.option("--markdown", is_flag=True, help="Print a Markdown table (the README's event map).")
def events(markdown: bool) -> None:
    """Print who emits and who consumes each event of the suite."""
    services = _services()
    if markdown:
        click.echo(event_map_markdown(services))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="events: producer -> consumers")
    for column in ("producer", "event", "consumers (service.handler)"):
        table.add_column(column)
    for producer, event_type, consumers in event_map(services):
        table.add_row(producer, event_type, ", ".join(consumers) or "-")
    Console().print(table)


@main.command("reencrypt-secrets")
@click.argument("service")
def reencrypt_secrets(service: str) -> None:
    """Encrypt every stored secret of a service again with the first LOGISTICS_SECRETS_KEY key.

    After putting a new key first (LOGISTICS_SECRETS_KEY=<new>,<old>) and restarting, run this;
    then the old key can be dropped. Safe to run while the service runs, and to repeat.
    """
    from .stored_secrets import encrypted_columns, reencrypt

    spec = _spec(service)
    settings = _settings(spec)
    app = make_app(spec, settings, web=False)
    registry = app.registry
    try:
        box = registry["logistics.secretbox"]
        box.load()
        counts = reencrypt(
            registry["dbengine"], box, encrypted_columns(spec, registry["logistics.platform_tables"])
        )
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    for column, count in counts.items():
        click.echo(f"{column}: {count} re-encrypted")
    if not counts:
        click.echo(f"{spec.name} stores no secrets")


@main.group()
def dlq() -> None:
    """Inspect and operate a service's dead-letter queue."""


@dlq.command("list")
@click.argument("service")
@click.option("--limit", type=int, default=100, show_default=True)
def dlq_list(service: str, limit: int) -> None:
    """List dead letters (they stay on the queue)."""
    from rich.console import Console
    from rich.table import Table

    from .bus.dlq import DeadLetterQueue

    letters = DeadLetterQueue(_settings(_spec(service)), service).peek(limit)
    table = Table(title=f"{service} dead letters ({len(letters)})")
    for column in ("message id", "handler", "reason", "attempts", "routing key", "when", "error"):
        table.add_column(column)
    for letter in letters:
        info = letter.summary
        table.add_row(
            info["message_id"],
            str(info["handler"]),
            str(info["reason"]),
            str(info["attempts"]),
            str(info["routing_key"]),
            str(info["dead_lettered_at"]),
            info["error"][0][:80],
        )
    Console().print(table)


@dlq.command("show")
@click.argument("service")
@click.argument("message_id")
def dlq_show(service: str, message_id: str) -> None:
    """Print one dead letter: its headers (error, attempts, origin) and body."""
    import orjson

    from .bus.dlq import DeadLetterQueue

    for letter in DeadLetterQueue(_settings(_spec(service)), service).peek(100_000):
        if letter.message_id == message_id:
            click.echo(
                orjson.dumps(
                    {"headers": letter.headers, "body": letter.body.decode("utf-8", "replace")},
                    default=str,
                    option=orjson.OPT_INDENT_2,
                ).decode()
            )
            return
    raise click.ClickException(f"no dead letter with message id {message_id}")


@dlq.command("replay")
@click.argument("service")
@click.option("--id", "message_id", default=None, help="Only this message (default: all).")
def dlq_replay(service: str, message_id: str | None) -> None:
    """Send dead letters back to their handler's queue, attempts reset."""
    from .bus.dlq import DeadLetterQueue

    count = DeadLetterQueue(_settings(_spec(service)), service).replay(message_id)
    click.echo(f"replayed {count} message(s)")


@dlq.command("purge")
@click.argument("service")
@click.option("--id", "message_id", default=None, help="Only this message (default: all).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(service: str, message_id: str | None, yes: bool) -> None:
    """Delete dead letters for good."""
    from .bus.dlq import DeadLetterQueue

    what = f"message {message_id}" if message_id else "every dead letter"
    if not yes:
        click.confirm(f"Delete {what} of {service}?", abort=True)
    count = DeadLetterQueue(_settings(_spec(service)), service).purge(message_id)
    click.echo(f"purged {count} message(s)")


def _moment(text: str, option: str) -> Any:
    """An ISO 8601 time (UTC unless it names an offset) or a duration ago (``90m``, ``2d``)."""
    from datetime import UTC, datetime, timedelta

    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
        except ValueError:
            raise click.BadParameter(
                f"{text!r}: an ISO 8601 time (2026-12-01T08:00:00Z) or a duration ago (90m, 8h, 2d)",
                param_hint=option,
            ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@main.command()
@click.argument("service")
@click.option("--since", default=None, help="From this time: ISO 8601 (UTC by default) or ago (8h, 2d).")
@click.option("--until", default=None, help="Up to (not including) this time; default: now.")
@click.option(
    "--snapshot",
    is_flag=True,
    help="Send every current entity as a *.updated event instead of outbox rows (no --since).",
)
@click.option("--to", "consumer", required=True, help="The one consumer (service.handler) to send to.")
@click.option(
    "--type", "types", multiple=True, help="Only this event type; repeatable (default: all it takes)."
)
@click.option("--dry-run", is_flag=True, help="Count what would be sent, per type; send nothing.")
def replay(
    service: str,
    since: str | None,
    until: str | None,
    snapshot: bool,
    consumer: str,
    types: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Re-send a service's own events to one consumer's queue (to fill a new read model).

    The events are the outbox rows the service published from --since on (kept for
    LOGISTICS_OUTBOX_RETENTION_HOURS), with their original ids and envelopes. They go
    through the default exchange to the consumer's queue alone: no other consumer and
    no webhook endpoint gets them. The consumer's inbox skips events it applied
    already, so a replay can be repeated safely. `logistics events` lists the consumers.

    With --snapshot, the service instead sends one *.updated event per entity as it is
    now (new ids, the entity's current version), for state older than the outbox keeps;
    the consumer's version guard keeps a newer state and makes a second snapshot a no-op.
    """
    from .bus.replay import Replay, ReplayError, Snapshot, find_consumer, selection_for, snapshot_sources

    if snapshot and (since or until):
        raise click.UsageError("--snapshot sends the current state: it takes no --since or --until")
    if not snapshot and since is None:
        raise click.UsageError("Missing option '--since' (or --snapshot, to send the current state)")
    spec = _spec(service)
    try:
        target = find_consumer(spec.name, consumer, _services())
    except ReplayError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    start = _moment(since, "--since") if since else None
    end = _moment(until, "--until") if until else None
    try:
        if snapshot:
            sources = snapshot_sources(spec.name, spec, target, types)
        else:
            assert start is not None
            selection = selection_for(target, types, start, end)
    except ReplayError as exc:
        raise click.UsageError(str(exc)) from None
    settings = _settings(spec)
    registry = make_app(spec, settings, web=False).registry
    common: dict[str, Any] = {
        "producer": spec.name,
        "consumer": target,
        "settings": settings,
        "session_factory": registry["dbsession_factory"],
        "outbox": registry["logistics.platform_tables"].outbox,
    }
    job: Replay | Snapshot = (
        Snapshot(sources=sources, **common) if snapshot else Replay(selection=selection, **common)
    )
    planned = job.count()
    if start is not None and planned.oldest_kept is not None and planned.oldest_kept > start:
        click.echo(
            f"note: the oldest event {spec.name} still keeps is from {planned.oldest_kept.isoformat()} "
            f"(LOGISTICS_OUTBOX_RETENTION_HOURS={settings.outbox_retention_hours:g})",
            err=True,
        )
    if dry_run:
        _replay_summary(f"would send to {job.queue}", planned.by_type)
        return
    total = planned.total
    if isinstance(job, Snapshot):
        click.echo(f"snapshot {job.run_id} (the events' correlation id)", err=True)

    def progress(done: Any) -> None:
        click.echo(f"sent {done.total}/{total}", err=True)

    try:
        sent = job.run(progress)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    _replay_summary(f"sent to {job.queue}", sent.by_type)


def _replay_summary(title: str, by_type: Mapping[str, int]) -> None:
    for event_type, count in sorted(by_type.items()):
        click.echo(f"{event_type}: {count}")
    click.echo(f"{title}: {sum(by_type.values())} event(s)")


@main.command("broker-policy")
@click.argument("service")
@click.option("--vhost", default=None, help="Virtual host (default: the one LOGISTICS_BROKER_URL names).")
@click.option("--priority", type=int, default=None, help="Policy priority (default 10).")
@click.option(
    "--apply", "run_it", is_flag=True, help="Without a management URL: run rabbitmqctl (on PATH) too."
)
def broker_policy(service: str, vhost: str | None, priority: int | None, run_it: bool) -> None:
    """Bound the service's unrouted parking queue with a RabbitMQ policy.

    max-length LOGISTICS_UNROUTED_MAX_LENGTH (the oldest are dropped beyond it) and
    message-ttl LOGISTICS_UNROUTED_TTL_SECONDS. With LOGISTICS_RABBITMQ_MANAGEMENT_URL
    set, applied through the management API; otherwise the equivalent rabbitmqctl
    command is printed (and run with --apply). Idempotent: applying again updates it.
    """
    import shutil

    from .bus import policy as bus_policy

    spec = _spec(service)
    settings = _settings(spec)
    chosen = bus_policy.DEFAULT_PRIORITY if priority is None else priority
    policy = bus_policy.unrouted_policy(settings, spec.name, vhost=vhost, priority=chosen)
    try:
        if settings.rabbitmq_management_url:
            bus_policy.apply_http(policy, settings.rabbitmq_management_url)
            where = bus_policy.redact(settings.rabbitmq_management_url)
            click.echo(f"policy {policy.name} set on vhost {policy.vhost} through {where}")
            return
        click.echo(bus_policy.rabbitmqctl_command(policy))
        if not run_it:
            return
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            raise click.ClickException("rabbitmqctl is not on PATH: run the command above where it is")
        bus_policy.run_rabbitmqctl(policy, ctl)
        click.echo(f"policy {policy.name} set on vhost {policy.vhost}", err=True)
    except bus_policy.PolicyError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--threads", type=int, default=4, show_default=True, help="Waitress threads per service.")
@click.option("--var-dir", default=None, help="Where SQLite files and keys live (default: ./var).")
@click.option("--port-offset", type=int, default=0, show_default=True, help="Added to every service's port.")
@click.option(
    "--demo", "load_demo", is_flag=True, help="Load the demo data (as `logistics demo`) once all are ready."
)
def up(host: str, threads: int, var_dir: str | None, port_offset: int, load_demo: bool) -> None:
    """Run every installed service in one process on the embedded default.

    Web apps, outbox relays, consumers and periodic tasks all run here, over
    the in-process ``memory://`` bus (no confirms or delayed retries there).
    With --demo, the demo data is loaded over HTTP once the services answer;
    if that fails, everything stops with exit status 1.
    """
    if var_dir:
        os.environ["LOGISTICS_VAR_DIR"] = var_dir
    specs = _services()
    if not specs:
        raise click.ClickException("no services installed")
    from .bus.worker import Worker

    servers, workers, stop = [], [], threading.Event()
    dispatchers: list[tuple[Any, threading.Thread]] = []
    # Before any server answers: a SIGTERM once a port is up must stop everything cleanly.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    all_settings = []
    for spec in specs.values():
        settings = _settings(spec)
        all_settings.append(settings)
        if not settings.is_sqlite or not settings.broker_url.startswith("memory"):
            database, broker = settings.database_url.split(":")[0], settings.broker_url.split(":")[0]
            click.echo(f"note: {spec.name} uses {database} / {broker} from the environment", err=True)
        _upgrade(spec, settings)
        app = make_app(spec, settings)
        _allow_open_files(settings, servers=len(specs))
        server = _create_server(
            app, host, spec.port + port_offset, threads=threads, **_waitress_limits(settings)
        )
        servers.append((spec, server))
        runner = Worker(spec, settings, app.registry)
        runner.start()
        workers.append(runner)
        if app.registry["logistics.platform_tables"].webhooks is not None:
            dispatchers.append(_start_dispatcher(spec, settings, app.registry))
    for spec, server in servers:
        threading.Thread(target=server.run, name=f"waitress-{spec.name}", daemon=True).start()
        url = f"http://{host}:{spec.port + port_offset}"
        click.echo(f"{spec.name:<10} {url}  (docs: {url}/docs)")
    click.echo("Ctrl-C stops everything.", err=True)
    demo_failed = threading.Event()
    if load_demo:
        threading.Thread(
            target=_demo_while_up,
            args=(list(specs.values()), host, port_offset, stop, demo_failed),
            name="demo",
            daemon=True,
        ).start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    stop.set()
    from .web.waitress_server import drain_and_close

    # As `serve` does: no new connections, requests in flight finish, then the workers
    # finish their batches.
    graceful = min(settings.web_graceful_timeout for settings in all_settings)
    drain_and_close([server for _name, server in servers], graceful)
    for runner in workers:
        runner.shutdown()
    for dispatcher_, _thread in dispatchers:
        dispatcher_.stop()
    for dispatcher_, thread in dispatchers:
        thread.join(dispatcher_.grace + 10)
    sys.exit(1 if demo_failed.is_set() else 0)


def _start_dispatcher(spec: ServiceSpec, settings: Settings, registry: Any) -> tuple[Any, threading.Thread]:
    """The service's webhook dispatcher on an event loop of its own, in a thread."""
    from .webhooks.dispatcher import Dispatcher

    runner = Dispatcher(spec.name, settings, registry)
    thread = threading.Thread(target=runner.run, name=f"{spec.name}-dispatcher", daemon=True)
    thread.start()
    return runner, thread


@main.command()
@click.argument("service")
@click.option(
    "--health-host", default="127.0.0.1", show_default=True, help="Interface of the health endpoint."
)
@click.option("--health-port", type=int, default=None, help="Health/metrics port (default: web port + 200).")
def dispatcher(service: str, health_host: str, health_port: int | None) -> None:
    """Run one service's webhook dispatcher (asyncio): sends due deliveries to endpoints.

    Any number of replicas share the work (claims are leases, SKIP LOCKED). SIGTERM
    (or Ctrl-C) stops claiming; in-flight deliveries get LOGISTICS_WEB_GRACEFUL_TIMEOUT
    seconds to finish, the rest are released for another dispatcher.
    """
    from .health import health_app

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spec = _spec(service)
    settings = _settings(spec)
    app = make_app(spec, settings, web=False)
    if app.registry["logistics.platform_tables"].webhooks is None:
        raise click.UsageError(f"the {service} service has no webhooks")
    runner, thread = _start_dispatcher(spec, settings, app.registry)
    port = health_port or settings.dispatcher_health_port or spec.port + 200
    _allow_open_files(settings)
    metrics = app.registry["logistics.metrics"].registry
    health = _create_server(
        health_app(runner.readiness, metrics), health_host, port, threads=2, **_waitress_limits(settings)
    )
    threading.Thread(target=health.run, name="dispatcher-health", daemon=True).start()
    click.echo(f"{spec.name} dispatcher running; health on http://{health_host}:{port}/readyz", err=True)
    try:
        while not stop.wait(0.5) and thread.is_alive():
            pass
    except KeyboardInterrupt:
        pass
    click.echo(f"{spec.name} dispatcher stopping (finishing in-flight deliveries)", err=True)
    runner.stop()
    thread.join(runner.grace + 10)
    health.close()
    if not stop.is_set() and not thread.is_alive():
        raise click.ClickException("the dispatcher stopped unexpectedly")


def _demo_while_up(
    specs: list[ServiceSpec], host: str, port_offset: int, stop: threading.Event, failed: threading.Event
) -> None:
    # A half-loaded demo would only confuse whoever follows the walk-through: stop loudly.
    try:
        _load_demo(specs, host, port_offset)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}; stopping.", err=True)
        failed.set()
        stop.set()


def _load_demo(specs: list[ServiceSpec], host: str, port_offset: int) -> None:
    from .demo import DemoContext, DemoError, run_demo

    # `up --host 0.0.0.0` listens everywhere; the loader still has to name one address.
    target = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
    target = f"[{target}]" if ":" in target else target
    urls = {spec.name: f"http://{target}:{spec.port + port_offset}" for spec in specs}
    try:
        # Minted exactly as `logistics token --role admin --subject demo` would (the same settings
        # call); one subject, so each rerun's Idempotency-Keys find the first run's responses.
        keyring = load_keyring(_token_settings())
        # 15 minutes: loading takes seconds; a short-lived admin token is the safer leftover.
        token = mint_token(keyring, role=Role.ADMIN, subject="demo", warehouses=(), ttl_seconds=900)
        loaded = run_demo(specs, DemoContext(urls, token, echo=click.echo))
    except (SettingsError, DemoError, ValueError) as exc:  # ValueError: a lifetime the settings refuse
        raise click.ClickException(f"demo data not loaded: {exc}") from None
    click.echo(f"demo data loaded ({', '.join(loaded) or 'no service has any'})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the services listen.")
@click.option(
    "--port-offset", type=int, default=0, show_default=True, help="Added to every service's port (as for up)."
)
def demo(host: str, port_offset: int) -> None:
    """Load demo data into running services (`logistics up`, or any deployment) over HTTP.

    Each installed service creates its own demo data through its own API, as
    an admin (a token minted with the same settings as `logistics token`),
    in port order, and waits for the events where the next step needs them,
    so the real saga runs. README "Walk-through" lists what each creates.

    \b
    Safe to run again: every create sends an Idempotency-Key, so a rerun
    replays the first run's answers instead of adding copies; catalogue
    entries that already exist (a 409) are kept; whatever has a lifecycle
    is only moved on from the state it is in. Exit status 1, with the
    failed request and its problem, if a step fails.
    """
    _load_demo(list(_services().values()), host, port_offset)

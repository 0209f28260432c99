"""``logistics``: one CLI for every installed service (entry point ``logistics.services``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from .security import Role, load_keyring, mint_token, parse_duration
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


def make_app(spec: ServiceSpec, settings: Settings) -> Any:
    from .logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    return spec.configure(settings).make_wsgi_app()


def _waitress_limits(settings: Settings) -> dict[str, Any]:
    # Far above the app's own cap, so the app answers 413 as problem+json and
    # waitress's plain-text 413 only guards against absurd bodies.
    return {"max_request_body_size": max(settings.max_body_bytes * 16, 16 * 1024 * 1024)}


@main.command()
@click.argument("service")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: the service's own).")
@click.option("--threads", type=int, default=8, show_default=True, help="Waitress worker threads.")
def serve(service: str, host: str, port: int | None, threads: int) -> None:
    """Run one service's web process on waitress."""
    import waitress

    spec = _spec(service)
    settings = _settings(spec)
    app = make_app(spec, settings)
    port = port or spec.port
    click.echo(f"{spec.name} listening on http://{host}:{port}", err=True)
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        ident=f"logistics-{spec.name}",
        **_waitress_limits(settings),
    )


@main.command()
@click.argument("service")
@click.option("--revision", default="head", show_default=True, help="Target Alembic revision.")
def migrate(service: str, revision: str) -> None:
    """Upgrade a service's database to the latest (or a given) revision."""
    from .migrations import upgrade

    spec = _spec(service)
    settings = _settings(spec)
    upgrade(spec, settings, revision)
    click.echo(f"{spec.name}: migrated to {revision}")


@main.command()
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--warehouse", "warehouses", multiple=True, help="Warehouse code (staff); repeatable.")
@click.option("--subject", default=None, help="The `sub` claim (default: the role name).")
@click.option("--ttl", default="8h", show_default=True, help="Lifetime: 90s, 15m, 8h, 7d.")
def token(role: str, warehouses: tuple[str, ...], subject: str | None, ttl: str) -> None:
    """Print a signed bearer token (uses the same settings as the services)."""
    try:
        seconds = parse_duration(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if role == Role.WAREHOUSE_STAFF and not warehouses:
        raise click.BadParameter("warehouse staff need at least one --warehouse", param_hint="--warehouse")
    try:
        keyring = load_keyring(load_settings("inventory"))
        click.echo(
            mint_token(
                keyring, role=Role(role), subject=subject or role, warehouses=warehouses, ttl_seconds=seconds
            )
        )
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--threads", type=int, default=4, show_default=True, help="Waitress threads per service.")
@click.option("--var-dir", default=None, help="Where SQLite files and keys live (default: ./var).")
@click.option("--port-offset", type=int, default=0, show_default=True, help="Added to every service's port.")
def up(host: str, threads: int, var_dir: str | None, port_offset: int) -> None:
    """Run every installed service in one process on the embedded default."""
    from waitress.server import create_server

    from .migrations import upgrade

    if var_dir:
        os.environ["LOGISTICS_VAR_DIR"] = var_dir
    specs = _services()
    if not specs:
        raise click.ClickException("no services installed")
    servers, stop = [], threading.Event()
    for spec in specs.values():
        settings = _settings(spec)
        if not settings.is_sqlite or not settings.broker_url.startswith("memory"):
            database, broker = settings.database_url.split(":")[0], settings.broker_url.split(":")[0]
            click.echo(f"note: {spec.name} uses {database} / {broker} from the environment", err=True)
        upgrade(spec, settings)
        app = make_app(spec, settings)
        server = create_server(
            app, host=host, port=spec.port + port_offset, threads=threads, **_waitress_limits(settings)
        )
        servers.append((spec, server))
        for task in spec.background:
            _start_periodic(task, app.registry, settings, stop)
    for spec, server in servers:
        threading.Thread(target=server.run, name=f"waitress-{spec.name}", daemon=True).start()
        url = f"http://{host}:{spec.port + port_offset}"
        click.echo(f"{spec.name:<10} {url}  (docs: {url}/docs)")
    click.echo("Ctrl-C stops everything.", err=True)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    stop.set()
    for _name, server in servers:
        server.close()
    sys.exit(0)


def _start_periodic(task: Any, registry: Any, settings: Settings, stop: threading.Event) -> None:
    interval = task.interval(settings)

    def loop() -> None:
        while not stop.wait(interval):
            try:
                task.run(registry)
            except Exception:
                log.exception("background task %s failed", task.name)

    threading.Thread(target=loop, name=task.name, daemon=True).start()

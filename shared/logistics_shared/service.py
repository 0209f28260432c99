"""What a service registers through the ``logistics.services`` entry point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from pyramid.config import Configurator
    from sqlalchemy import MetaData

    from .demo import DemoContext
    from .security import Role
    from .settings import Settings


@dataclass(frozen=True)
class BackgroundTask:
    """A periodic job (e.g. the reservation sweeper) run by ``up`` and the worker."""

    name: str
    run: Callable[[Any], object]  # called with the registry
    interval: Callable[[Settings], float]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    description: str
    #: ``"inventory:migrations"``: the Alembic script location inside the package.
    migrations: str
    configure: Callable[[Settings], Configurator]
    metadata: Callable[[], MetaData]
    role_permissions: Callable[[], Mapping[Role, frozenset[str]]]
    version: str = "0.1.0"
    cli: Callable[[], click.Group] | None = None
    background: tuple[BackgroundTask, ...] = field(default_factory=tuple)
    #: The service's event handlers (``logistics_shared.bus.handlers.Handler``).
    handlers: Callable[[], tuple[Any, ...]] | None = None
    #: The read models its web checks requests against: a ``logistics_shared.bus.drain.DrainWatch``
    #: naming the handlers whose consumers record when their queue was last drained.
    drain_watch: Callable[[], Any] | None = None
    #: PostgreSQL settings (``"name=value"``) for every session of this service.
    pg_settings: tuple[str, ...] = ()
    #: The service's own settings: a frozen dataclass whose fields are declared with
    #: ``logistics_shared.settings.setting`` (``Settings.own`` holds the loaded instance).
    settings: type | None = None
    #: OpenAPI security schemes beyond the bearer token (a carrier webhook's signature).
    security_schemes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Columns holding secrets encrypted with the secret box, besides the webhook endpoints'
    #: (``logistics reencrypt-secrets`` rotates them to the newest key).
    stored_secrets: Callable[[], tuple[Any, ...]] | None = None
    #: Loads the service's demo data through its own HTTP API (``logistics demo``); run in port order.
    demo: Callable[[DemoContext], None] | None = None
    #: The entities it can send as snapshot events (``logistics replay --snapshot``): a tuple
    #: of ``logistics_shared.snapshot.SnapshotSource``, one per event type.
    snapshots: Callable[[], tuple[Any, ...]] | None = None


def lazy(target: str) -> Callable[..., Any]:
    """``lazy("inventory:configure")``: import on first call, not when the CLI loads.

    Entry points are loaded for every ``logistics`` command; importing each
    service's whole app there would slow ``--help`` and drag Pyramid into it.
    """
    module_name, _, attribute = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        from importlib import import_module

        return getattr(import_module(module_name), attribute)(*args, **kwargs)

    return call


def discover() -> dict[str, ServiceSpec]:
    """Installed services, by name: an image with one service has a CLI for it alone."""
    found: dict[str, ServiceSpec] = {}
    for ep in entry_points(group="logistics.services"):
        spec = ep.load()
        found[spec.name] = spec
    return dict(sorted(found.items(), key=lambda item: item[1].port))

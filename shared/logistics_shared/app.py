"""The platform part of every service's single ``configure()``.

A service's ``configure(settings)`` calls :func:`base_configurator` and adds
its own routes; web (``serve``, ``up``, ``pserve``) and worker processes all
build the app this way.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.interfaces import IRoutesMapper
from pyramid.tweens import EXCVIEW
from pyramid_tm import TMActivePredicate, explicit_manager
from sqlalchemy import Table

from .db import READ_ONLY_METHODS
from .metrics import ServiceMetrics
from .outbox import Outbox
from .platform_tables import PlatformTables
from .security import UNDECLARED, JWTSecurityPolicy, load_keyring
from .service import ServiceSpec
from .settings import Settings
from .web.request import LogisticsRequest
from .web.routing import IndexedRoutesMapper


def base_configurator(
    spec: ServiceSpec, settings: Settings, platform: PlatformTables, **registry_extras: Any
) -> Configurator:
    config = Configurator(
        settings={
            "tm.manager_hook": explicit_manager,
            # Reads run on an autocommit engine of their own and never join a
            # transaction: no transaction manager to begin and end around them.
            "tm.activate_hook": _writes_only,
        }
    )
    registry = config.registry
    # Before any route: Pyramid uses the mapper registered, or makes its own (web/routing.py).
    registry.registerUtility(IndexedRoutesMapper(), IRoutesMapper)
    registry["logistics.settings"] = settings
    registry["logistics.service"] = spec
    registry["logistics.platform_tables"] = platform
    registry["logistics.metrics"] = ServiceMetrics(spec.name)
    # Stored secrets (webhook signing, carriers) are encrypted; the key is read when first
    # needed, so a process that never opens one (a worker) needs none, as with the JWT keys.
    registry["logistics.secretbox"] = LazySecretBox(settings)
    if platform.webhooks is not None:
        from .webhooks.metrics import WebhookMetrics

        registry["logistics.webhook_metrics"] = WebhookMetrics(
            spec.name, registry["logistics.metrics"].registry
        )
    for key, value in registry_extras.items():
        registry[key] = value

    # pyramid_tm's includeme, except ``request.tm``: it adds that with add_request_method,
    # and any such property makes Pyramid build a new request subclass on every request
    # (see web/request.py), so LogisticsRequest declares ``tm`` itself.
    config.add_tween("pyramid_tm.tm_tween_factory", over=EXCVIEW)
    config.add_view_predicate("tm_active", TMActivePredicate)
    config.include("logistics_shared.db")
    # The keys are read when first needed (web: at start, see cli.make_app), so a worker,
    # built by the same configure(), holds no JWT key at all.
    config.set_security_policy(JWTSecurityPolicy(lambda: load_keyring(settings), spec.role_permissions()))
    config.set_default_permission(UNDECLARED)
    config.include("logistics_shared.web.problems")
    config.include("logistics_shared.web.ops")
    config.include("logistics_shared.web.openapi")
    config.include("logistics_shared.web.docs")
    config.add_tween("logistics_shared.web.tweens.observability_tween_factory")
    # Per caller and route class, shared by the replicas in Redis (LOGISTICS_RATE_LIMITS_ENABLED).
    config.include("logistics_shared.web.ratelimit")
    # request.dbsession and request.outbox: properties of the class, see web/request.py.
    config.set_request_factory(LogisticsRequest)
    return config


class LazySecretBox:
    """A :class:`~logistics_shared.secretbox.SecretBox` built from the settings on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._box: Any = None

    def load(self) -> None:
        """Read the key now (a web process at start): a missing or bad one is a SettingsError."""
        self._get()

    def _get(self) -> Any:
        if self._box is None:
            from .secretbox import SecretBox

            self._box = SecretBox.from_settings(self.settings)
        return self._box

    def encrypt(self, plaintext: str) -> str:
        return str(self._get().encrypt(plaintext))

    def decrypt(self, token: str) -> str:
        return str(self._get().decrypt(token))

    def rotate(self, token: str) -> str:
        return str(self._get().rotate(token))


def _writes_only(request: Any) -> bool:
    return request.method not in READ_ONLY_METHODS


def request_outbox(request: Any) -> Outbox:
    table: Table = request.registry["logistics.platform_tables"].outbox
    from .logs import request_id

    return Outbox(
        request.dbsession,
        table,
        producer=request.registry["logistics.service"].name,
        correlation_id=request_id.get(),
    )

"""The shipping service: one ``configure()`` for web and worker processes."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator

from logistics_shared.app import base_configurator
from logistics_shared.settings import Settings


def configure(settings: Settings) -> Configurator:
    from logistics_shared.cache import TwoLevelCache

    from . import models
    from .domain.changes import invalidate_after_commit
    from .service import SERVICE

    config = base_configurator(SERVICE, settings, models.platform)
    # The tracking lookup cache: in-process, and shared through Redis when a TTL is set.
    cache = config.registry["tracking_cache"] = TwoLevelCache(
        "tracking",
        redis_url=settings.redis_url if settings.cache_shared_seconds > 0 else "",
        local_ttl=settings.cache_local_seconds,
        shared_ttl=max(settings.cache_shared_seconds, 1),
        metrics=config.registry["logistics.metrics"].cache,
    )
    invalidate_after_commit(config.registry["dbsession_factory"], cache)
    config.include("shipping.routes")
    return config


def main(global_config: dict[str, Any], **ini: Any) -> Any:
    """PasteDeploy entry point: ``pserve services/shipping/development.ini``.

    A missing or malformed setting exits with one line naming it (``SystemExit``), not a traceback.
    """
    from logistics_shared.cli import paste_app

    from .service import SERVICE

    return paste_app(SERVICE, ini)

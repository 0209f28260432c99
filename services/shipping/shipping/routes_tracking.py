"""Routes of tracking: carrier webhooks, staff events, tracking lookups."""

from __future__ import annotations

from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """Tracking routes are registered here."""

"""Routes of carriers, rates and labels."""

from __future__ import annotations

from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """Carrier, rate and label routes are registered here."""

"""The support service's URL map. Only the platform endpoints (health, readiness,
metrics, OpenAPI, docs) exist so far; its API arrives with its own issue.
"""

from __future__ import annotations

from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """No API routes yet: nothing fake is served."""

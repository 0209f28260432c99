"""Tracking events from carriers (webhook) and staff."""

from __future__ import annotations

from .models import metadata

__all__ = ["metadata"]

"""Carriers, their services and rate tables, and purchased labels (filled in by the labels work)."""

from __future__ import annotations

from .models import metadata

__all__ = ["metadata"]

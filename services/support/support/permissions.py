"""The support service's permissions (none granted yet: it has no API routes)."""

from __future__ import annotations

from logistics_shared.identity import Role


def role_permissions() -> dict[Role, frozenset[str]]:
    return {}

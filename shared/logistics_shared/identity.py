"""Who is acting: plain data the service layer can take without importing Pyramid."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

#: While set, the warehouses a request was allowed to use (see :func:`recording_scope`).
_scope: ContextVar[set[str] | None] = ContextVar("logistics_warehouse_scope", default=None)


class Role(enum.StrEnum):
    ADMIN = "admin"
    WAREHOUSE_STAFF = "warehouse_staff"
    SUPPORT_AGENT = "support_agent"
    SERVICE = "service"


@dataclass(frozen=True)
class Identity:
    subject: str
    role: Role
    warehouses: frozenset[str] = field(default_factory=frozenset)

    @property
    def all_warehouses(self) -> bool:
        """Only warehouse staff are scoped to a list of warehouses."""
        return self.role is not Role.WAREHOUSE_STAFF

    @property
    def actor(self) -> str:
        """How history rows and idempotency keys name who acted: ``role:subject``."""
        return f"{self.role}:{self.subject}"

    def can_access_warehouse(self, code: str) -> bool:
        allowed = self.all_warehouses or code in self.warehouses
        scope = _scope.get()
        if allowed and scope is not None:
            scope.add(code)
        return allowed


@contextmanager
def recording_scope() -> Iterator[set[str]]:
    """Collect every warehouse the code inside was allowed to use.

    An ``Idempotency-Key`` replay must not hand a stored response to a token
    that no longer covers the warehouses of the first request; the warehouse
    checks are spread through the service layer, so they report here instead
    of each endpoint declaring its scope.
    """
    found: set[str] = set()
    token = _scope.set(found)
    try:
        yield found
    finally:
        _scope.reset(token)


#: The actor of work no person asked for (the sweeper, a consumer).
SYSTEM = Identity(subject="system", role=Role.SERVICE)

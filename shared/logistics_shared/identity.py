"""Who is acting: plain data the service layer can take without importing Pyramid."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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

    def can_access_warehouse(self, code: str) -> bool:
        return self.all_warehouses or code in self.warehouses


#: The actor of work no person asked for (the sweeper, a consumer).
SYSTEM = Identity(subject="system", role=Role.SERVICE)

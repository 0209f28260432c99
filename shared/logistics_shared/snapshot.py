"""What a service declares to send its current state as events (``logistics replay --snapshot``).

The outbox keeps published events for ``outbox_retention_hours`` only, so a read model
created later than that cannot be filled by replaying them. A *snapshot* instead
produces one event per entity as it is now: of the entity's ``*.updated`` type, with
the same data (the producer builds it with the same function as its live events) and
the entity's current ``version``, which the consumers' version guard compares, so a
snapshot never overwrites a newer state and a second one changes nothing.

A service lists its sources in ``ServiceSpec.snapshots``; this module holds no
broker code (a service's domain imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

#: One page of a source: ``(primary key, event data)`` pairs in ascending key order.
Page = list[tuple[Any, dict[str, Any]]]


@dataclass(frozen=True)
class SnapshotSource:
    """The current entities of one kind, as events of ``event_type``, a page at a time."""

    event_type: str
    #: ``page(session, after, limit)``: at most ``limit`` entities whose primary key is
    #: greater than ``after`` (``None``: from the first), ascending. Paging by key keeps a
    #: snapshot of any size in constant memory, one short read transaction per page.
    page: Callable[[Session, Any, int], Page]
    #: How many entities a snapshot would send now (``--dry-run``).
    count: Callable[[Session], int]

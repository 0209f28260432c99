"""The ticket lifecycle as an explicit state machine:
``new -> open <-> pending -> solved -> closed``, ``solved -> open`` (reopen).
An open ticket may also be solved directly.
"""

from __future__ import annotations

from logistics_shared.errors import Conflict

TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open"}),
    "open": frozenset({"pending", "solved"}),
    "pending": frozenset({"open", "solved"}),
    "solved": frozenset({"closed", "open"}),
    "closed": frozenset(),
}

#: Tickets still being worked on (automatic notes go to these).
ACTIVE = ("new", "open", "pending")


def can(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check(current: str, target: str) -> None:
    """Raise a 409 naming the current state unless ``current -> target`` is allowed."""
    if not can(current, target):
        raise Conflict(
            f"A ticket that is {current} cannot become {target}.",
            current_status=current,
            requested_status=target,
        )

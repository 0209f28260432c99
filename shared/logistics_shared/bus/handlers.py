"""Event handlers a service registers: thin functions that call its service layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..outbox import Outbox

#: ``handler(session, envelope, outbox)``: apply the event inside the caller's
#: transaction; raise to have it retried.
HandlerFunc = Callable[[Session, dict[str, Any], Outbox], None]


@dataclass(frozen=True)
class Handler:
    name: str
    #: The service whose exchange carries the events.
    producer: str
    #: Event types (routing keys) this handler subscribes to.
    events: tuple[str, ...]
    func: HandlerFunc

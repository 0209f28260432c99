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


#: A service's subscription table, the one place it says what it consumes: handler ->
#: the event types it applies. The handler's name names its queue
#: (``<namespace>.<service>.<name>``), the event contracts name each type's producer.
Subscriptions = dict[HandlerFunc, tuple[str, ...]]


def subscribe(table: Subscriptions) -> tuple[Handler, ...]:
    """The :class:`Handler` of each entry of ``table`` (every type a handler takes must
    come from one producer's exchange: a queue is bound to one exchange)."""
    from ..events.registry import REGISTRY

    found = []
    for func, types in table.items():
        producers = {REGISTRY.producer_of(t) for t in types}
        if len(producers) != 1:
            raise ValueError(f"handler {func.__name__} takes events of {sorted(producers)}: split it")
        found.append(Handler(func.__name__, producer=producers.pop(), events=tuple(types), func=func))
    return tuple(found)

"""The public webhook events: what an endpoint may subscribe to, and exactly what it gets.

Each entry maps an internal event (the bus envelope's ``type``) to a public type and a
payload schema that is an allow-list: a field not named here never leaves the suite
(the reservation held for a shipment, an internal comment). Payloads are versioned
separately from the bus events: a public ``version`` changes only when an integrator's
code would have to, and the old one is then sent until every endpoint moved.

The body is the Standard Webhooks payload shape: ``{"type", "timestamp", "data"}``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from marshmallow import Schema, fields

from ..events import REGISTRY

#: (An alias: inside PublicEvent, whose field is named ``type``, ``type[...]`` is not the builtin.)
SchemaClass = type[Schema]

#: Public events of the webhook machinery itself, offered by every webhook-enabled service.
ENDPOINT_DISABLED = "webhook_endpoint.disabled"
PING = "webhook_endpoint.ping"


class _Shipment(Schema):
    shipment_id = fields.String(required=True, metadata={"format": "uuid"})
    reference = fields.String(required=True)
    warehouse = fields.String(required=True)
    #: The shipment's version after the change: order a shipment's events by it.
    version = fields.Integer(allow_none=True)


class _ShipmentState(_Shipment):
    status = fields.String(required=True)


class WebhookLine(Schema):
    sku = fields.String(required=True)
    quantity = fields.Integer(required=True)


class WebhookShortage(Schema):
    sku = fields.String(required=True)
    requested = fields.Integer()
    available = fields.Integer()


class WebhookTracking(Schema):
    status = fields.String(required=True)
    description = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    occurred_at = fields.String(required=True, metadata={"format": "date-time"})
    source = fields.String(required=True)


class ShipmentCreatedData(_Shipment):
    lines = fields.List(fields.Nested(WebhookLine), required=True)


class ShipmentReadyData(_ShipmentState):
    pass


class ShipmentOnHoldData(_ShipmentState):
    reason = fields.String(required=True)
    detail = fields.String(required=True)
    shortages = fields.List(fields.Nested(WebhookShortage), required=True)


class ShipmentLabelPurchasedData(_ShipmentState):
    carrier = fields.String(required=True)
    service = fields.String(required=True)
    tracking_number = fields.String(required=True)


class ShipmentTrackedData(_ShipmentState):
    tracking = fields.Nested(WebhookTracking, required=True)


class ShipmentMovedData(ShipmentTrackedData):
    previous_status = fields.String(required=True)


class ShipmentCancelledData(_Shipment):
    reason = fields.String(allow_none=True)


class _Ticket(Schema):
    ticket_id = fields.String(required=True, metadata={"format": "uuid"})
    number = fields.Integer(required=True)


class TicketCreatedData(_Ticket):
    subject = fields.String(required=True)
    type = fields.String(required=True)
    priority = fields.String(required=True)
    status = fields.String(required=True)
    queue = fields.String(required=True)
    assignee = fields.String(allow_none=True)
    shipment_id = fields.String(allow_none=True, metadata={"format": "uuid"})


class TicketStatusChangedData(_Ticket):
    previous_status = fields.String(required=True)
    status = fields.String(required=True)


class TicketAssignedData(_Ticket):
    previous_assignee = fields.String(allow_none=True)
    assignee = fields.String(allow_none=True)


class TicketSlaBreachedData(_Ticket):
    kind = fields.String(required=True)
    priority = fields.String(required=True)
    assignee = fields.String(allow_none=True)
    breached_at = fields.String(required=True, metadata={"format": "date-time"})


class EndpointDisabledData(Schema):
    endpoint_id = fields.String(required=True, metadata={"format": "uuid"})
    url = fields.String(required=True)
    reason = fields.String(required=True)
    failing_since = fields.String(allow_none=True, metadata={"format": "date-time"})
    disabled_at = fields.String(required=True, metadata={"format": "date-time"})


class PingData(Schema):
    endpoint_id = fields.String(required=True, metadata={"format": "uuid"})
    message = fields.String(required=True)


@dataclass(frozen=True)
class PublicEvent:
    type: str
    version: int
    schema: SchemaClass
    description: str
    #: The bus event it is made from (None: made by the webhook machinery itself).
    source: str | None = None
    #: Where the event's warehouse is in the data (staff endpoints get their warehouses' only).
    warehouse_field: str | None = None

    def render(self, data: dict[str, Any], occurred_at: str) -> bytes:
        """The body sent: the allow-listed data in the Standard Webhooks payload shape."""
        return orjson.dumps({"type": self.type, "timestamp": occurred_at, "data": self.schema().dump(data)})


_TRACKED = "A carrier scan moved the shipment"
CATALOGUE: tuple[PublicEvent, ...] = (
    PublicEvent(
        "shipment.created",
        1,
        ShipmentCreatedData,
        "A shipment was accepted; stock is being reserved.",
        "shipment.requested",
        "warehouse",
    ),
    PublicEvent(
        "shipment.ready",
        1,
        ShipmentReadyData,
        "Stock is reserved: the shipment can be labelled.",
        "shipment.ready",
        "warehouse",
    ),
    PublicEvent(
        "shipment.on_hold",
        1,
        ShipmentOnHoldData,
        "The shipment waits: stock is short, or its hold expired.",
        "shipment.on_hold",
        "warehouse",
    ),
    PublicEvent(
        "shipment.label_purchased",
        1,
        ShipmentLabelPurchasedData,
        "A label was bought: the tracking number.",
        "shipment.label_purchased",
        "warehouse",
    ),
    PublicEvent(
        "shipment.status_changed",
        1,
        ShipmentMovedData,
        f"{_TRACKED} (in transit, out for delivery…).",
        "shipment.status_changed",
        "warehouse",
    ),
    PublicEvent(
        "shipment.exception",
        1,
        ShipmentMovedData,
        f"{_TRACKED} into an exception.",
        "shipment.exception",
        "warehouse",
    ),
    PublicEvent(
        "shipment.delivery_failed",
        1,
        ShipmentMovedData,
        "A delivery attempt failed.",
        "shipment.delivery_failed",
        "warehouse",
    ),
    PublicEvent(
        "shipment.delivered",
        1,
        ShipmentMovedData,
        "The shipment was delivered.",
        "shipment.delivered",
        "warehouse",
    ),
    PublicEvent(
        "shipment.tracked",
        1,
        ShipmentTrackedData,
        "A scan that did not change the status.",
        "shipment.tracked",
        "warehouse",
    ),
    PublicEvent(
        "shipment.cancelled",
        1,
        ShipmentCancelledData,
        "The shipment was cancelled; its stock released.",
        "shipment.cancelled",
        "warehouse",
    ),
    PublicEvent(
        "ticket.created",
        1,
        TicketCreatedData,
        "A ticket was opened (by an agent or automatically).",
        "ticket.created",
    ),
    PublicEvent(
        "ticket.status_changed",
        1,
        TicketStatusChangedData,
        "A ticket moved (open, pending, solved…).",
        "ticket.status_changed",
    ),
    PublicEvent("ticket.assigned", 1, TicketAssignedData, "A ticket's assignee changed.", "ticket.assigned"),
    PublicEvent(
        "ticket.sla_breached",
        1,
        TicketSlaBreachedData,
        "A ticket missed an SLA target.",
        "ticket.sla_breached",
    ),
)
#: Offered by every webhook-enabled service, whatever its events.
PLATFORM_EVENTS: tuple[PublicEvent, ...] = (
    PublicEvent(
        ENDPOINT_DISABLED,
        1,
        EndpointDisabledData,
        "An endpoint of this service was disabled after failing for too long (sent to the others).",
    ),
)
PING_EVENT = PublicEvent(PING, 1, PingData, "A test message (POST …/ping); sent only to that endpoint.")


class Catalogue:
    """One service's public events, by public and by internal type."""

    def __init__(self, service: str, events: Iterable[PublicEvent] = CATALOGUE) -> None:
        own = [e for e in events if e.source is not None and REGISTRY.producer_of(e.source) == service]
        self.service = service
        self.events: tuple[PublicEvent, ...] = (*own, *PLATFORM_EVENTS)
        self.by_type = {e.type: e for e in self.events}
        self.by_source = {e.source: e for e in self.events if e.source is not None}

    @property
    def types(self) -> list[str]:
        return sorted(self.by_type)

    def pattern_problem(self, pattern: str) -> str | None:
        """Why a subscription pattern is not acceptable, or None.

        A pattern is an event type, ``<prefix>.*`` or ``*``; it must match one of this
        service's events now (a typo that matches nothing would silently send nothing)."""
        head, star, tail = pattern.partition("*")
        if star and (tail or not (head == "" or head.endswith("."))):
            return "Use an event type, a prefix ending in '.*' (e.g. shipment.*), or '*'."
        if not self.matching([pattern]):
            return f"Matches none of this service's event types: {', '.join(self.types)}."
        return None

    def matching(self, patterns: Iterable[str]) -> list[str]:
        patterns = list(patterns)
        return [t for t in self.types if any(matches(p, t) for p in patterns)]


def matches(pattern: str, event_type: str) -> bool:
    """``shipment.*`` matches ``shipment.ready``; ``*`` matches everything."""
    return fnmatch.fnmatchcase(event_type, pattern)

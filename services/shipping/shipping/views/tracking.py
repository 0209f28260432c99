from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED

from logistics_shared.errors import InvalidField
from logistics_shared.web.endpoint import endpoint

from ..domain import lookup, shipments, tracking, webhooks
from ..permissions import Permission
from ..schemas.shipments import ShipmentSchema
from ..schemas.tracking import (
    TrackingEventInSchema,
    TrackingLookupSchema,
    WebhookEventSchema,
    WebhookResultSchema,
)

TAGS = ("tracking",)


@endpoint(
    "shipment_tracking",
    "POST",
    permission=Permission.SHIPMENTS_WRITE,
    summary="Record a tracking event seen by staff (moves the shipment along its lifecycle)",
    tags=TAGS,
    body=TrackingEventInSchema,
    response=ShipmentSchema,
    status=201,
    problems=(404, 409),
    idempotent=True,
    references=("/occurred_at",),
    example={
        "status": "in_transit",
        "location": "Amsterdam sorting centre",
        "description": "Scanned at the hub",
    },
)
def record_event(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    shipment = shipments.load_for_update(request.dbsession, request.matchdict["id"], request.identity)
    cause = request.identity.actor
    tracking.record(
        request.dbsession, request.outbox, shipment, body, source="staff", cause=cause, strict=True
    )
    return shipments.get(request.dbsession, request.identity, shipment["id"])


def _signed_by_carrier(request: Request, raw: bytes) -> None:
    webhooks.verify(
        request.dbsession,
        request.registry["logistics.secretbox"],
        request.matchdict["carrier"],
        request.headers.get("X-Carrier-Timestamp"),
        request.headers.get("X-Carrier-Signature"),
        raw,
    )


@endpoint(
    "carrier_webhook",
    "POST",
    permission=NO_PERMISSION_REQUIRED,
    summary="Tracking events from a carrier, signed with its HMAC secret (no bearer token)",
    tags=TAGS,
    body=WebhookEventSchema,
    response=WebhookResultSchema,
    problems=(409,),
    security=("carrier_signature", "carrier_timestamp"),
    references=("/tracking_number", "/occurred_at"),
    guard=_signed_by_carrier,
    # Limited per carrier once its signature is verified: nobody else can spend its budget.
    webhook_sender="carrier",
    example={
        "event_id": "evt-0001",
        "tracking_number": "PNL00000000018",
        "status": "out_for_delivery",
        "location": "Amsterdam",
        "occurred_at": "2026-12-02T09:30:00Z",
    },
)
def carrier_webhook(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Headers: ``X-Carrier-Timestamp`` (unix seconds) and ``X-Carrier-Signature``
    (``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body`` with the carrier's
    webhook secret). Stale (over 5 minutes) or unsigned requests are 401; a
    repeated event id is accepted once and then reported as a duplicate."""
    carrier = request.matchdict["carrier"]
    shipment_id = lookup.shipment_for_tracking_number(request.dbsession, carrier, body["tracking_number"])
    if shipment_id is None:
        raise InvalidField("/tracking_number", f"Unknown tracking number {body['tracking_number']!r}.")
    shipment = shipments.load_for_update(request.dbsession, shipment_id, None)
    moved = tracking.record(
        request.dbsession,
        request.outbox,
        shipment,
        body,
        source=f"carrier:{carrier}",
        cause=f"carrier:{carrier}:{body['event_id']}",
        strict=False,
    )
    if moved is None:
        return {"result": "duplicate", "shipment_status": shipment["status"]}
    return {"result": "accepted", "shipment_status": moved["status"]}


@endpoint(
    "tracking_lookup",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="Where is this parcel? Status and tracking history by tracking number (cached)",
    tags=TAGS,
    response=TrackingLookupSchema,
    problems=(404,),
)
def tracking_lookup(request: Request) -> dict[str, Any]:
    number = request.matchdict["number"]
    found = request.registry["tracking_cache"].get(
        number, lambda: lookup.by_tracking_number(request.dbsession, number)
    )
    # Access is checked on every read, cached or not.
    if found is None or not request.identity.can_access_warehouse(found["warehouse"]):
        raise lookup.not_found(number)
    return found

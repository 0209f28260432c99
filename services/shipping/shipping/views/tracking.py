from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import endpoint

from ..domain import shipments, tracking
from ..permissions import Permission
from ..schemas import ShipmentSchema
from ..schemas_tracking import TrackingEventInSchema

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
)
def record_event(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    shipment = shipments.load_for_update(request.dbsession, request.matchdict["id"], request.identity)
    cause = f"{request.identity.role}:{request.identity.subject}"
    tracking.record(
        request.dbsession, request.outbox, shipment, body, source="staff", cause=cause, strict=True
    )
    return shipments.get(request.dbsession, request.identity, shipment["id"])

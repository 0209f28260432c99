from __future__ import annotations

from datetime import timedelta
from typing import Any

from pyramid.request import Request

from logistics_shared.schemas import ONE_LINE_PER_SKU, postal_code_rule
from logistics_shared.web.endpoint import Reply, endpoint
from logistics_shared.web.etag import etag, expected_version

from ..domain import catalogue, references, shipments
from ..permissions import Permission
from ..schemas.shipments import (
    CancelSchema,
    ShipmentCreateConflictProblemSchema,
    ShipmentCreateSchema,
    ShipmentPageSchema,
    ShipmentQuerySchema,
    ShipmentSchema,
)

TAGS = ("shipments",)


def _hold_for(request: Request) -> timedelta | None:
    hours = request.registry["logistics.settings"].own.shipment_hold_hours
    return timedelta(hours=hours) if hours > 0 else None


@endpoint(
    "shipments",
    "POST",
    permission=Permission.SHIPMENTS_WRITE,
    summary="Create a shipment (inventory is asked to reserve its lines)",
    tags=TAGS,
    body=ShipmentCreateSchema,
    response=ShipmentSchema,
    status=201,
    problems=((409, ShipmentCreateConflictProblemSchema),),
    idempotent=True,
    # An unknown SKU or warehouse is a 422 only while the catalogue read model is synced.
    references=("/warehouse", "/lines/*/sku"),
    creates="shipment",
    cross_field={**postal_code_rule("/ship_to"), **ONE_LINE_PER_SKU},
    example={
        "reference": "ORDER-1001",
        "warehouse": "AMS",
        "ship_to": {
            "name": "Jan Jansen",
            "line1": "Damrak 1",
            "city": "Amsterdam",
            "postal_code": "1012 LG",
            "country": "NL",
        },
        "lines": [{"sku": "TEE-M", "quantity": 2}],
        "parcels": [{"weight_g": 400, "length_mm": 300, "width_mm": 250, "height_mm": 40}],
    },
)
def create(request: Request, body: dict[str, Any]) -> Reply:
    """A reference that a shipment of the same warehouse already has, while that one is
    not cancelled, is a 409 (``urn:logistics:problem:duplicate-shipment-reference``)
    naming it in ``existing_shipment``, so a client retrying without an
    ``Idempotency-Key`` does not reserve the stock twice; ``"allow_duplicate_reference":
    true`` creates another shipment with the reference anyway. A retry with the same
    ``Idempotency-Key`` replays the first answer (its 201), as for any create.

    An unknown SKU or warehouse is a 422 on its field while shipping's catalogue read
    model is drained (``catalogue.check_shipment``), before the duplicate check."""
    fresh = request.registry["logistics.settings"].own.catalogue_fresh_seconds
    body = catalogue.check_shipment(request.dbsession, body, fresh)
    try:
        shipment = shipments.create(
            request.dbsession, request.outbox, request.identity, body, _hold_for(request)
        )
    except references.DuplicateReference as duplicate:
        raise duplicate.linked(request.route_path("shipment", id=duplicate.existing["id"])) from None
    return Reply(
        shipment,
        headers={
            "Location": request.route_path("shipment", id=shipment["id"]),
            "ETag": etag(shipment["version"]),
        },
    )


@endpoint(
    "shipments",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="List shipments",
    tags=TAGS,
    query=ShipmentQuerySchema,
    response=ShipmentPageSchema,
)
def list_(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = shipments.list_(
        request.dbsession,
        request.identity,
        status=query.get("status"),
        warehouse=query.get("warehouse"),
        reference=query.get("reference"),
        since=query.get("since"),
        until=query.get("until"),
        cursor=query["cursor"],
        limit=query["limit"],
        search=query.get("q"),
        sort=query["sort"],
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "shipment",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="A shipment with its full history",
    tags=TAGS,
    response=ShipmentSchema,
    problems=(404,),
)
def get(request: Request) -> Reply:
    shipment = shipments.get(request.dbsession, request.identity, request.matchdict["id"])
    return Reply(shipment, headers={"ETag": etag(shipment["version"])})


@endpoint(
    "shipment_cancel",
    "POST",
    permission=Permission.SHIPMENTS_WRITE,
    summary="Cancel a shipment (until it is in transit); its stock is released",
    tags=TAGS,
    body=CancelSchema,
    response=ShipmentSchema,
    problems=(404, 409),
    etag=True,
    action=True,
    example={"reason": "The customer changed their mind"},
)
def cancel(request: Request, body: dict[str, Any]) -> Reply:
    shipment = shipments.cancel(
        request.dbsession,
        request.outbox,
        request.identity,
        request.matchdict["id"],
        body.get("reason"),
        expected_version(request),
    )
    return Reply(shipment, headers={"ETag": etag(shipment["version"])})


@endpoint(
    "shipment_retry",
    "POST",
    permission=Permission.SHIPMENTS_WRITE,
    summary="Retry an on-hold shipment: ask inventory to reserve again",
    tags=TAGS,
    response=ShipmentSchema,
    problems=(404, 409),
    etag=True,
    action=True,
    example={},
)
def retry(request: Request) -> Reply:
    shipment = shipments.retry(
        request.dbsession,
        request.outbox,
        request.identity,
        request.matchdict["id"],
        _hold_for(request),
        expected_version(request),
    )
    return Reply(shipment, headers={"ETag": etag(shipment["version"])})

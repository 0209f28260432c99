from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import endpoint

from ..domain import shipments
from ..permissions import Permission
from ..schemas.shipments import ShipmentLookupResultSchema, ShipmentLookupSchema, ShipmentViewSchema


@endpoint(
    "shipment",
    "GET",
    permission=Permission.DESK_READ,
    summary="A shipment as shipping's events describe it, with the tickets linked to it",
    tags=("shipments",),
    response=ShipmentViewSchema,
    problems=(404,),
)
def get(request: Request) -> dict[str, Any]:
    return shipments.get(request.dbsession, request.matchdict["id"], request.identity)


@endpoint(
    "shipments",
    "GET",
    permission=Permission.DESK_READ,
    summary="Find shipments by tracking number or reference, else the 20 latest (the local read model)",
    tags=("shipments",),
    query=ShipmentLookupSchema,
    response=ShipmentLookupResultSchema,
)
def find(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    found = shipments.find(
        request.dbsession,
        request.identity,
        tracking_number=query.get("tracking_number"),
        reference=query.get("reference"),
    )
    return {"items": found}

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import endpoint

from ..domain import shipment_list, shipments
from ..permissions import Permission
from ..schemas.shipments import ShipmentListQuerySchema, ShipmentPageSchema, ShipmentViewSchema


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
    summary="List the local read model's shipments: by tracking number, reference, status, warehouse, "
    "last change (since/until), sorted (newest change first by default)",
    tags=("shipments",),
    query=ShipmentListQuerySchema,
    response=ShipmentPageSchema,
)
def list_(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = shipment_list.list_(
        request.dbsession,
        request.identity,
        filters=query,
        sort=query["sort"],
        cursor=query["cursor"],
        limit=query["limit"],
    )
    return {"items": rows, "next_cursor": cursor}

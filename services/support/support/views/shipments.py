from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import endpoint

from ..domain import shipments
from ..permissions import Permission
from ..schemas import ShipmentViewSchema


@endpoint(
    "shipment",
    "GET",
    permission=Permission.SUPPORT_READ,
    summary="A shipment as shipping's events describe it, with the tickets linked to it",
    tags=("shipments",),
    response=ShipmentViewSchema,
    problems=(404,),
)
def get(request: Request) -> dict[str, Any]:
    return shipments.get(request.dbsession, request.matchdict["id"], request.identity)

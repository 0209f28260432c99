"""Rate quotes for a shipment, buying its label, and downloading the label."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from logistics_shared.web.endpoint import Reply, endpoint
from logistics_shared.web.etag import etag

from ..domain import labels, rates
from ..permissions import Permission
from ..schemas.carriers import LabelledShipmentSchema, LabelPurchaseSchema, RateQuoteListSchema

TAGS = ("labels",)


@endpoint(
    "shipment_rates",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="Quotes of every carrier service that covers the shipment, cheapest first",
    tags=TAGS,
    response=RateQuoteListSchema,
    problems=(404, 409),
)
def quotes(request: Request) -> dict[str, Any]:
    return {"items": rates.quotes(request.dbsession, request.identity, request.matchdict["id"])}


@endpoint(
    "shipment_label",
    "POST",
    permission=Permission.SHIPMENTS_WRITE,
    summary="Buy the label of a ready shipment: tracking number, price, document",
    tags=TAGS,
    body=LabelPurchaseSchema,
    response=LabelledShipmentSchema,
    status=201,
    problems=(404, 409),
    idempotent=True,
    references=("/carrier", "/service"),
    creates="shipment_label",
    example={"carrier": "POSTNL", "service": "standard", "format": "pdf"},
)
def purchase(request: Request, body: dict[str, Any]) -> Reply:
    shipment = labels.purchase(
        request.dbsession, request.outbox, request.identity, request.matchdict["id"], body
    )
    return Reply(
        shipment,
        headers={
            "Location": request.route_path("shipment_label", id=shipment["id"]),
            "ETag": etag(shipment["version"]),
        },
    )


@endpoint(
    "shipment_label",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="Download the label (application/pdf, or ZPL as text/plain)",
    tags=TAGS,
    problems=(404,),
    produces={
        "application/pdf": "The label as a PDF page (format pdf at purchase)",
        "text/plain": "The label as ZPL for thermal printers (format zpl at purchase), UTF-8",
    },
)
def download(request: Request) -> Response:
    content, content_type, filename = labels.document(
        request.dbsession, request.identity, request.matchdict["id"]
    )
    return Response(
        body=content,
        headerlist=[
            ("Content-Type", content_type),
            ("Content-Disposition", f'attachment; filename="{filename}"'),
            ("Cache-Control", "private, no-store"),
        ],
    )

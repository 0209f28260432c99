"""Carriers and their services with rate tables (admins write, shipping readers read)."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import Reply, endpoint

from ..domain import rates
from ..permissions import Permission
from ..schemas.carriers import (
    RATE_TABLE_RULES,
    CarrierCreateSchema,
    CarrierPageSchema,
    CarrierQuerySchema,
    CarrierSchema,
    CarrierServiceSchema,
    ServiceCreateSchema,
)

TAGS = ("carriers",)
#: A service of two zones (the Amsterdam area is cheaper than the rest of the Netherlands).
SERVICE_EXAMPLE = {
    "code": "standard",
    "name": "Standard",
    "rate_table": {
        "currency": "EUR",
        "dim_divisor": 5000,
        "zones": [
            {"name": "nl", "countries": ["NL"]},
            {"name": "ams", "countries": ["NL"], "postal_prefixes": ["10", "11"]},
        ],
        "weight_bands": [
            {"max_g": 2000, "prices": {"nl": 495, "ams": 395}},
            {"max_g": 10000, "prices": {"nl": 795, "ams": 695}},
        ],
    },
}


@endpoint(
    "carriers",
    "POST",
    permission=Permission.CARRIERS_WRITE,
    summary="Register a carrier (its webhook secret is write-only)",
    tags=TAGS,
    body=CarrierCreateSchema,
    response=CarrierSchema,
    status=201,
    problems=(409,),
    idempotent=True,
    creates="carrier",
    example={
        "code": "POSTNL",
        "name": "PostNL",
        "webhook_secret": "whsec-change-me-0123456789",
        "tracking_prefix": "PNL",
    },
)
def create(request: Request, body: dict[str, Any]) -> Reply:
    carrier = rates.create_carrier(request.dbsession, request.registry["logistics.secretbox"], body)
    return Reply(carrier, headers={"Location": request.route_path("carrier", code=carrier["code"])})


@endpoint(
    "carriers",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="List carriers with their services and rate tables",
    tags=TAGS,
    query=CarrierQuerySchema,
    response=CarrierPageSchema,
)
def list_(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = rates.list_carriers(
        request.dbsession, cursor=query["cursor"], limit=query["limit"], sort=query["sort"]
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "carrier",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="A carrier with its services and rate tables",
    tags=TAGS,
    response=CarrierSchema,
    problems=(404,),
)
def get(request: Request) -> dict[str, Any]:
    return rates.get_carrier(request.dbsession, request.matchdict["code"])


@endpoint(
    "carrier_services",
    "POST",
    permission=Permission.CARRIERS_WRITE,
    summary="Add a service with its rate table (zones, weight bands, dimensional divisor)",
    tags=TAGS,
    body=ServiceCreateSchema,
    response=CarrierServiceSchema,
    status=201,
    problems=(404, 409),
    idempotent=True,
    cross_field=RATE_TABLE_RULES,
    example=SERVICE_EXAMPLE,
)
def create_service(request: Request, body: dict[str, Any]) -> Reply:
    service = rates.create_service(request.dbsession, request.matchdict["code"], body)
    location = request.route_path("carrier_service", code=service["carrier"], service=service["code"])
    return Reply(service, headers={"Location": location})


@endpoint(
    "carrier_service",
    "GET",
    permission=Permission.SHIPMENTS_READ,
    summary="A carrier service with its rate table",
    tags=TAGS,
    response=CarrierServiceSchema,
    problems=(404,),
)
def get_service(request: Request) -> dict[str, Any]:
    return rates.get_service(request.dbsession, request.matchdict["code"], request.matchdict["service"])

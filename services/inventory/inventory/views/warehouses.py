from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.schemas import postal_code_rule
from logistics_shared.web.endpoint import Reply, endpoint

from ..domain import catalog
from ..permissions import Permission
from ..schemas.warehouses import (
    LocationCreateSchema,
    LocationPageSchema,
    LocationQuerySchema,
    LocationSchema,
    WarehouseCreateSchema,
    WarehousePageSchema,
    WarehouseQuerySchema,
    WarehouseSchema,
)

TAGS = ("warehouses",)


@endpoint(
    "warehouses",
    "POST",
    permission=Permission.CATALOG_WRITE,
    summary="Create a warehouse",
    tags=TAGS,
    body=WarehouseCreateSchema,
    response=WarehouseSchema,
    status=201,
    problems=(409,),
    idempotent=True,
    cross_field=postal_code_rule("/address"),
    creates="warehouse",
    example={
        "code": "AMS",
        "name": "Amsterdam DC",
        "address": {
            "name": "Amsterdam DC",
            "line1": "Dock 1",
            "city": "Amsterdam",
            "postal_code": "1011 AB",
            "country": "NL",
        },
    },
)
def create_warehouse(request: Request, body: dict[str, Any]) -> Reply:
    warehouse = catalog.create_warehouse(request.dbsession, body)
    return Reply(warehouse, headers={"Location": request.route_path("warehouse", code=warehouse["code"])})


@endpoint(
    "warehouses",
    "GET",
    permission=Permission.CATALOG_READ,
    summary="List the warehouses you can see",
    tags=TAGS,
    query=WarehouseQuerySchema,
    response=WarehousePageSchema,
)
def list_warehouses(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = catalog.list_warehouses(
        request.dbsession, request.identity, query["cursor"], query["limit"], sort=query["sort"]
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "warehouse",
    "GET",
    permission=Permission.CATALOG_READ,
    summary="Get a warehouse",
    tags=TAGS,
    response=WarehouseSchema,
    problems=(404,),
)
def get_warehouse(request: Request) -> dict[str, Any]:
    return catalog.get_warehouse(request.dbsession, request.identity, request.matchdict["code"])


@endpoint(
    "locations",
    "POST",
    permission=Permission.CATALOG_WRITE,
    summary="Add a location to a warehouse",
    tags=TAGS,
    body=LocationCreateSchema,
    response=LocationSchema,
    status=201,
    problems=(404, 409),
    idempotent=True,
    example={"code": "A-01-1", "description": "Aisle A, bay 1, shelf 1"},
)
def create_location(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return catalog.create_location(request.dbsession, request.identity, request.matchdict["code"], body)


@endpoint(
    "locations",
    "GET",
    permission=Permission.CATALOG_READ,
    summary="List a warehouse's locations",
    tags=TAGS,
    query=LocationQuerySchema,
    response=LocationPageSchema,
    problems=(404,),
)
def list_locations(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = catalog.list_locations(
        request.dbsession,
        request.identity,
        request.matchdict["code"],
        query["cursor"],
        query["limit"],
        sort=query["sort"],
    )
    return {"items": rows, "next_cursor": cursor}

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.schemas import postal_code_rule
from logistics_shared.web.endpoint import Reply, endpoint
from logistics_shared.web.etag import etag, expected_version

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
    WarehouseUpdateSchema,
)

TAGS = ("warehouses",)

ADDRESS_EXAMPLE = {
    "name": "Amsterdam DC",
    "line1": "Dock 1",
    "city": "Amsterdam",
    "postal_code": "1011 AB",
    "country": "NL",
    "phone": "+31 20 123 4567",
}


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
    example={"code": "AMS", "name": "Amsterdam DC", "address": ADDRESS_EXAMPLE},
)
def create_warehouse(request: Request, body: dict[str, Any]) -> Reply:
    warehouse = catalog.create_warehouse(request.dbsession, body, request.outbox)
    return Reply(
        warehouse,
        headers={
            "Location": request.route_path("warehouse", code=warehouse["code"]),
            "ETag": etag(warehouse["version"]),
        },
    )


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
def get_warehouse(request: Request) -> Reply:
    warehouse = catalog.get_warehouse(request.dbsession, request.identity, request.matchdict["code"])
    return Reply(warehouse, headers={"ETag": etag(warehouse["version"])})


@endpoint(
    "warehouse",
    "PATCH",
    permission=Permission.CATALOG_WRITE,
    summary="Change a warehouse's name or address (If-Match guards it)",
    tags=TAGS,
    body=WarehouseUpdateSchema,
    response=WarehouseSchema,
    problems=(404,),
    etag=True,
    cross_field=postal_code_rule("/address"),
    example={"address": ADDRESS_EXAMPLE},
)
def update_warehouse(request: Request, body: dict[str, Any]) -> Reply:
    warehouse = catalog.update_warehouse(
        request.dbsession,
        request.identity,
        request.matchdict["code"],
        body,
        expected_version(request),
        request.outbox,
    )
    return Reply(warehouse, headers={"ETag": etag(warehouse["version"])})


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

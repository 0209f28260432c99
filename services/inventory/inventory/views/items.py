from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import Reply, endpoint
from logistics_shared.web.etag import etag, expected_version

from ..domain import catalog
from ..permissions import Permission
from ..schemas.items import ItemCreateSchema, ItemPageSchema, ItemQuerySchema, ItemSchema, ItemUpdateSchema

TAGS = ("items",)


def _with_etag(request: Request, item: dict[str, Any], status: int | None = None) -> Reply:
    headers = {"ETag": etag(item["version"])}
    if status == 201:
        headers["Location"] = request.route_path("item", sku=item["sku"])
    return Reply(item, status=status, headers=headers)


@endpoint(
    "items",
    "POST",
    permission=Permission.CATALOG_WRITE,
    summary="Create an item (SKU)",
    tags=TAGS,
    body=ItemCreateSchema,
    response=ItemSchema,
    status=201,
    problems=(409,),
    idempotent=True,
    creates="item",
    example={
        "sku": "TEE-M",
        "name": "T-shirt, size M",
        "unit_weight_g": 180,
        "length_mm": 300,
        "width_mm": 250,
        "height_mm": 20,
        "reorder_point": 10,
    },
)
def create_item(request: Request, body: dict[str, Any]) -> Reply:
    return _with_etag(request, catalog.create_item(request.dbsession, body, request.outbox), status=201)


@endpoint(
    "items",
    "GET",
    permission=Permission.CATALOG_READ,
    summary="List items by SKU",
    tags=TAGS,
    query=ItemQuerySchema,
    response=ItemPageSchema,
)
def list_items(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = catalog.list_items(
        request.dbsession,
        query["cursor"],
        query["limit"],
        query.get("sku_prefix"),
        search=query.get("q"),
        sort=query["sort"],
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "item",
    "GET",
    permission=Permission.CATALOG_READ,
    summary="Get an item",
    tags=TAGS,
    response=ItemSchema,
    problems=(404,),
)
def get_item(request: Request) -> Reply:
    return _with_etag(request, catalog.get_item(request.dbsession, request.matchdict["sku"]))


@endpoint(
    "item",
    "PATCH",
    permission=Permission.CATALOG_WRITE,
    summary="Change an item (If-Match guards it)",
    tags=TAGS,
    body=ItemUpdateSchema,
    response=ItemSchema,
    problems=(404,),
    etag=True,
    example={"reorder_point": 12},
)
def update_item(request: Request, body: dict[str, Any]) -> Reply:
    item = catalog.update_item(
        request.dbsession, request.matchdict["sku"], body, expected_version(request), request.outbox
    )
    return _with_etag(request, item)

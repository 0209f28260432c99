from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from logistics_shared.web.csv_stream import CSV, wants_csv
from logistics_shared.web.endpoint import endpoint

from ..domain import stock
from ..permissions import Permission
from ..schemas.stock import (
    AdjustmentCreateSchema,
    AdjustmentSchema,
    MovementPageSchema,
    MovementQuerySchema,
    ReceiptCreateSchema,
    ReceiptSchema,
    StockConflictProblemSchema,
    StockPageSchema,
    StockQuerySchema,
    TransferCreateSchema,
    TransferSchema,
)
from . import exports

TAGS = ("stock",)
#: The CSV export of a list: every row matching the filters, from ``cursor`` on.
AS_CSV = {
    CSV: "With `Accept: text/csv`: every row matching the filters from `cursor` on, streamed "
    "(`limit` does not apply)"
}


@endpoint(
    "stock",
    "GET",
    permission=Permission.STOCK_READ,
    summary="Stock levels: on hand, reserved, available",
    tags=TAGS,
    query=StockQuerySchema,
    response=StockPageSchema,
    alternatives=AS_CSV,
)
def list_stock(request: Request, query: dict[str, Any]) -> dict[str, Any] | Response:
    # The sort too: a CSV export pages through the same keyset order as the JSON list.
    filters = {"sku": query.get("sku"), "warehouse": query.get("warehouse"), "sort": query["sort"]}
    if wants_csv(request):
        return exports.stock_csv(request, filters, query["cursor"])
    rows, cursor = stock.list_stock(
        request.dbsession, request.identity, cursor=query["cursor"], limit=query["limit"], **filters
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "receipts",
    "POST",
    permission=Permission.STOCK_WRITE,
    summary="Receive stock into a warehouse",
    tags=TAGS,
    body=ReceiptCreateSchema,
    response=ReceiptSchema,
    status=201,
    idempotent=True,
    problems=((409, StockConflictProblemSchema),),
    references=("/warehouse", "/sku", "/location"),
    example={
        "warehouse": "AMS",
        "sku": "TEE-M",
        "quantity": 40,
        "location": "A-01-1",
        "reference": "PO-2026-118",
    },
)
def receive(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return stock.receive(request.dbsession, request.outbox, request.identity, body)


@endpoint(
    "adjustments",
    "POST",
    permission=Permission.STOCK_WRITE,
    summary="Adjust stock by a counted quantity or a signed delta, with a reason",
    tags=TAGS,
    body=AdjustmentCreateSchema,
    response=AdjustmentSchema,
    status=201,
    idempotent=True,
    problems=((409, StockConflictProblemSchema),),
    references=("/warehouse", "/sku", "/location"),
    example={"warehouse": "AMS", "sku": "TEE-M", "counted": 38, "reason": "count", "note": "Cycle count"},
)
def adjust(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return stock.adjust(request.dbsession, request.outbox, request.identity, body)


@endpoint(
    "transfers",
    "POST",
    permission=Permission.STOCK_WRITE,
    summary="Move stock between two warehouses",
    tags=TAGS,
    body=TransferCreateSchema,
    response=TransferSchema,
    status=201,
    idempotent=True,
    problems=((409, StockConflictProblemSchema),),
    references=("/from_warehouse", "/to_warehouse", "/sku"),
    example={
        "from_warehouse": "AMS",
        "to_warehouse": "RTM",
        "sku": "TEE-M",
        "quantity": 5,
        "reference": "TR-77",
    },
)
def transfer(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return stock.transfer(request.dbsession, request.outbox, request.identity, body)


@endpoint(
    "movements",
    "GET",
    permission=Permission.STOCK_READ,
    summary="The movement ledger",
    tags=TAGS,
    query=MovementQuerySchema,
    response=MovementPageSchema,
    alternatives=AS_CSV,
)
def list_movements(request: Request, query: dict[str, Any]) -> dict[str, Any] | Response:
    filters = {name: query.get(name) for name in ("sku", "warehouse", "kind", "since", "until")}
    filters["sort"] = query["sort"]
    if wants_csv(request):
        return exports.movements_csv(request, filters, query["cursor"])
    rows, cursor = stock.list_movements(
        request.dbsession, request.identity, cursor=query["cursor"], limit=query["limit"], **filters
    )
    return {"items": rows, "next_cursor": cursor}

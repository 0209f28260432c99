"""The stock levels and the movement ledger as CSV (``Accept: text/csv``), for spreadsheets.

Only the columns and the paging live here: each export pages through the same list
query (filters, warehouse scoping, order) its JSON answer uses (``domain.stock``).
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from logistics_shared.web.csv_stream import EXPORT_PAGE, csv_response

from ..domain import stock

STOCK_COLUMNS = ("warehouse", "sku", "on_hand", "reserved", "available")
MOVEMENT_COLUMNS = (
    "id",
    "created_at",
    "warehouse",
    "sku",
    "location",
    "kind",
    "quantity",
    "reason",
    "note",
    "reference",
    "reservation_id",
    "actor",
)


def stock_csv(request: Request, filters: dict[str, Any], cursor: str | None) -> Response:
    identity = request.identity

    def fetch(connection: Any, after: str | None) -> Any:
        return stock.list_stock(connection, identity, cursor=after, limit=EXPORT_PAGE, **filters)

    return csv_response(request, STOCK_COLUMNS, fetch, cursor=cursor, filename="stock.csv")


def movements_csv(request: Request, filters: dict[str, Any], cursor: str | None) -> Response:
    identity = request.identity

    def fetch(connection: Any, after: str | None) -> Any:
        return stock.list_movements(connection, identity, cursor=after, limit=EXPORT_PAGE, **filters)

    return csv_response(request, MOVEMENT_COLUMNS, fetch, cursor=cursor, filename="movements.csv")

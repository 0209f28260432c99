"""Limit (b) of the hot reads: a bare Pyramid app doing each endpoint's SQL through a
``psycopg_pool`` pool and returning the same JSON.

No security policy, tweens, schemas or ORM: the floor every one of our endpoints stands
on (the same router, the same database round trip, the same JSON). ``bench/instructions.py``
and ``bench/http.py`` divide our endpoints by these.

    .venv/bin/python bench/limits.py --database-url postgresql://... --port 8090 --threads 4
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which Pyramid imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
from typing import Any

import orjson
from psycopg_pool import ConnectionPool
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router

STOCK_SQL = (
    "SELECT stock_levels.id, items.sku, warehouses.code AS warehouse, stock_levels.on_hand,"
    " stock_levels.reserved FROM stock_levels JOIN items ON items.id = stock_levels.item_id"
    " JOIN warehouses ON warehouses.id = stock_levels.warehouse_id"
    " WHERE items.sku = %(sku)s AND warehouses.code = %(warehouse)s ORDER BY stock_levels.id LIMIT %(limit)s"
)
ITEM_SQL = (
    "SELECT sku, name, unit_weight_g, length_mm, width_mm, height_mm, reorder_point, version,"
    " created_at, updated_at FROM items WHERE sku = %(sku)s"
)


def _json(body: Any) -> Response:
    return Response(body=orjson.dumps(body, option=orjson.OPT_UTC_Z), content_type="application/json")


def make_app(pool: ConnectionPool) -> Router:
    def stock(request: Request) -> Response:
        params = {"sku": request.GET["sku"], "warehouse": request.GET["warehouse"], "limit": 51}
        with pool.connection() as conn:
            rows = conn.execute(STOCK_SQL, params).fetchall()
        items = [
            {"sku": r[1], "warehouse": r[2], "on_hand": r[3], "reserved": r[4], "available": r[3] - r[4]}
            for r in rows[:50]
        ]
        return _json({"items": items, "next_cursor": None})

    def item(request: Request) -> Response:
        with pool.connection() as conn:
            row = conn.execute(ITEM_SQL, {"sku": request.matchdict["sku"]}).fetchone()
        names = ("sku", "name", "unit_weight_g", "length_mm", "width_mm", "height_mm", "reorder_point")
        body = dict(zip((*names, "version", "created_at", "updated_at"), row, strict=True))
        return _json(body)

    with Configurator() as config:
        config.add_route("stock", "/v1/stock")
        config.add_view(stock, route_name="stock", request_method="GET")
        config.add_route("item", "/v1/items/{sku}")
        config.add_view(item, route_name="item", request_method="GET")
    return config.make_wsgi_app()


def make_pool(database_url: str, size: int) -> ConnectionPool:
    # autocommit, as our read engine: one round trip per query.
    return ConnectionPool(database_url, min_size=size, max_size=size, kwargs={"autocommit": True}, open=True)


def main() -> None:
    import waitress

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    args = parser.parse_args()
    app = make_app(make_pool(args.database_url, args.threads))
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="bench-limit")


if __name__ == "__main__":
    main()

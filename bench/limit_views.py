"""Limit (b) of the hot reads: a bare Pyramid app doing each endpoint's SQL through a
``psycopg_pool`` pool and returning the same JSON.

The statements are the ones our endpoints send (seen with an SQLAlchemy cursor hook), one
per round trip as ours: a shipment is its row and five child lists, a tracking lookup the
label joined to its shipment and then its events, the tickets' first page one ordered scan.

No security policy, tweens, schemas or ORM: the floor every one of our endpoints stands
on (the same router, the same database round trip, the same JSON). ``bench/instructions.py``
and ``bench/http.py`` divide our endpoints by these.

    .venv/bin/python bench/limit_views.py --database-url postgresql://... --port 8090 --threads 4
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which Pyramid imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
from datetime import UTC, datetime, timedelta
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


SHIPMENT_SQL = (
    "SELECT id, reference, warehouse, ship_to, status, hold_reason, reservation_id, version,"
    " created_by, created_at, updated_at FROM shipments WHERE id = %(id)s"
)
TRACKING_EVENTS_SQL = (
    "SELECT status, description, location, occurred_at, source FROM tracking_events"
    " WHERE shipment_id = %(id)s ORDER BY occurred_at, id"
)
SHIPMENT_CHILDREN = {
    "lines": 'SELECT sku, quantity FROM shipment_lines WHERE shipment_id = %(id)s ORDER BY sku COLLATE "C"',
    "parcels": (
        "SELECT weight_g, length_mm, width_mm, height_mm FROM parcels WHERE shipment_id = %(id)s ORDER BY seq"
    ),
    "history": (
        "SELECT from_status, to_status, cause, detail, at FROM shipment_history"
        " WHERE shipment_id = %(id)s ORDER BY id"
    ),
    "tracking": TRACKING_EVENTS_SQL,
    "label": "SELECT carrier, service, tracking_number, format FROM labels WHERE shipment_id = %(id)s",
}
TRACKING_SQL = (
    "SELECT labels.tracking_number, labels.carrier, labels.service, shipments.id AS shipment_id,"
    " shipments.reference, shipments.warehouse, shipments.status FROM labels"
    " JOIN shipments ON shipments.id = labels.shipment_id WHERE labels.tracking_number = %(number)s"
)
TICKET_COLUMNS = (
    "number, id, subject, description, type, priority, status, queue, tags, assignee, shipment_id,"
    " order_reference, tracking_number, version, created_by, created_at, updated_at, first_response_due,"
    " resolution_due, first_responded_at, sla_paused_at, sla_paused_seconds,"
    " sla_first_response_breached_at, sla_resolution_breached_at"
)
TICKETS_SQL = f"SELECT {TICKET_COLUMNS} FROM tickets ORDER BY created_at, id LIMIT %(limit)s"
#: support's "breaching soon": the last quarter of a target (support/domain/sla.py, the
#: default of LOGISTICS_SLA_BREACHING_SOON_FRACTION).
SOON_FRACTION = 0.25
INTERNAL = (
    "sla_paused_at",
    "sla_paused_seconds",
    "sla_first_response_breached_at",
    "sla_resolution_breached_at",
)


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _sla_state(ticket: dict[str, Any], now: datetime) -> str:
    if ticket["sla_first_response_breached_at"] or ticket["sla_resolution_breached_at"]:
        return "breached"
    if ticket["status"] in ("solved", "closed"):
        return "met"
    if ticket["status"] == "pending":
        return "paused"
    opened = ticket["created_at"]
    clocks = [(ticket["resolution_due"], opened + timedelta(seconds=ticket["sla_paused_seconds"] or 0))]
    if ticket["first_responded_at"] is None:
        clocks.append((ticket["first_response_due"], opened))
    soon = any(due is not None and due - (due - start) * SOON_FRACTION <= now for due, start in clocks)
    return "breaching_soon" if soon else "ok"


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

    def shipment(request: Request) -> Response:
        params = {"id": request.matchdict["id"]}
        with pool.connection() as conn:
            cursor = conn.execute(SHIPMENT_SQL, params)
            found = _dicts(cursor)
            if not found:
                return Response(status=404)
            body = found[0]
            children = {name: _dicts(conn.execute(sql, params)) for name, sql in SHIPMENT_CHILDREN.items()}
        label = children.pop("label")
        body.update(children, label=label[0] if label else None)
        return _json(body)

    def tracking(request: Request) -> Response:
        with pool.connection() as conn:
            found = _dicts(conn.execute(TRACKING_SQL, {"number": request.matchdict["number"]}))
            if not found:
                return Response(status=404)
            body = found[0]
            body["events"] = _dicts(conn.execute(TRACKING_EVENTS_SQL, {"id": body["shipment_id"]}))
        return _json(body)

    def tickets(request: Request) -> Response:
        with pool.connection() as conn:
            rows = _dicts(conn.execute(TICKETS_SQL, {"limit": 51}))
        now = datetime.now(UTC)
        items = []
        for row in rows[:50]:
            state = _sla_state(row, now)
            items.append({k: v for k, v in row.items() if k not in INTERNAL} | {"sla_state": state})
        return _json({"items": items, "next_cursor": None})

    with Configurator() as config:
        config.add_route("ping", "/ping")  # readiness, for the benches that start this server
        config.add_view(lambda _request: Response("ok"), route_name="ping")
        config.add_route("shipment", "/v1/shipments/{id}")
        config.add_view(shipment, route_name="shipment", request_method="GET")
        config.add_route("tracking", "/v1/tracking/{number}")
        config.add_view(tracking, route_name="tracking", request_method="GET")
        config.add_route("tickets", "/v1/tickets")
        config.add_view(tickets, route_name="tickets", request_method="GET")
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

"""Every list under every allowed sort is an index range at 100,000 rows (PostgreSQL).

Per service, one cloned database of its own: each listed table gets 100,000 rows from one
``INSERT ... SELECT generate_series`` and an ``ANALYZE``, then every (list, sort) — both
directions, the first page and a page after a cursor — is requested over HTTP, and the
statement the list ran (caught on the app's read engine, parameters and all) is EXPLAINed:
it must read the listed table by an index scan, with no Sort node and no sequential scan of
that table. The search paths (``?q=`` on items and shipments) must use their trigram
indexes (a bitmap index scan). One load per table, reused by all its sorts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import event, text

from ..helpers.webhooks import collection
from .test_list_sorting import LISTINGS

pytestmark = [pytest.mark.fresh_app, pytest.mark.postgres]

ROWS = 100_000
_NOW = "timestamptz '2026-01-01 00:00:00+00'"
_ADDRESS = orjson.dumps({"name": "W", "line1": "Dock 1", "city": "Rotterdam", "country": "NL"}).decode()
_SHIP_TO = orjson.dumps({"name": "R", "line1": "Street 1", "city": "Utrecht", "country": "NL"}).decode()
#: created_at/updated_at: a second apart, every third pair tied, so ties are in the plan too.
_STAMP = f"{_NOW} + (g / 3) * interval '1 second'"

#: One statement per table: 100,000 rows (and what they refer to), in dependency order.
LOADS = {
    "inventory": [
        f"INSERT INTO warehouses (code, name, address, created_at) SELECT 'W' || g, 'Warehouse ' || g, "
        f"'{_ADDRESS}', {_STAMP} FROM generate_series(1, {ROWS}) g",
        "INSERT INTO items (sku, name, unit_weight_g, length_mm, width_mm, height_mm, created_at, "
        f"updated_at) SELECT 'SKU-' || g, 'Item ' || md5(g::text), 100, 10, 10, 10, {_STAMP}, {_STAMP} "
        f"FROM generate_series(1, {ROWS}) g",
        "INSERT INTO locations (warehouse_id, code, created_at) SELECT 1, 'L-' || g, "
        f"{_STAMP} FROM generate_series(1, {ROWS}) g",
        "INSERT INTO stock_levels (item_id, warehouse_id, on_hand, reserved) "
        f"SELECT g, 1, 7 + g % 1000, g % 7 FROM generate_series(1, {ROWS}) g",
        "INSERT INTO movements (item_id, warehouse_id, kind, quantity, actor, created_at) "
        f"SELECT g, 1, 'receipt', 1 + g % 50, 'load', {_STAMP} FROM generate_series(1, {ROWS}) g",
        "INSERT INTO reservations (id, warehouse_id, reference, status, created_by, created_at) "
        f"SELECT gen_random_uuid(), 1, 'SO-' || g, 'released', 'load', {_STAMP} "
        f"FROM generate_series(1, {ROWS}) g",
    ],
    "shipping": [
        "INSERT INTO carriers (code, name, tracking_prefix, created_at) "
        f"SELECT 'C' || g, 'Carrier ' || g, 'ZZ', {_STAMP} FROM generate_series(1, {ROWS}) g",
        "INSERT INTO shipments (id, reference, warehouse, ship_to, status, created_by, created_at, "
        "updated_at, recipient_name, postal_code) SELECT gen_random_uuid(), 'ORDER-' || g, 'AMS', "
        f"'{_SHIP_TO}', 'delivered', 'load', {_STAMP}, {_STAMP} + interval '1 day', "
        "'Customer ' || md5(g::text), lpad((g % 9000 + 1000)::text, 4, '0') || ' AB' "
        f"FROM generate_series(1, {ROWS}) g",
    ],
    "support": [
        "INSERT INTO tickets (id, subject, description, type, priority, status, queue, tags, "
        "created_by, created_at, updated_at) SELECT gen_random_uuid(), 'Ticket ' || md5(g::text), "
        f"'d', 'question', 'normal', 'open', 'customers', '[]', 'load', {_STAMP}, {_STAMP} "
        f"FROM generate_series(1, {ROWS}) g",
        "INSERT INTO ticket_comments (ticket_id, body, visibility, author, created_at) "
        f"SELECT (SELECT id FROM tickets ORDER BY number LIMIT 1), 'Comment ' || g, 'public', 'load', "
        f"{_STAMP} FROM generate_series(1, {ROWS}) g",
    ],
}
_WEBHOOKS = [
    "INSERT INTO webhook_endpoints (id, url, event_types, enabled, secret, created_by, created_at, "
    "updated_at, version) SELECT gen_random_uuid(), 'https://hooks.example.com/' || g, '[\"x.*\"]', "
    f"true, 'not-a-token', 'load', {_STAMP}, {_STAMP}, 1 FROM generate_series(1, {ROWS}) g",
    "INSERT INTO webhook_messages (id, event_type, payload, created_at) SELECT gen_random_uuid(), "
    f"'x.y', '{{}}', {_STAMP} FROM generate_series(1, {ROWS}) g",
    "INSERT INTO webhook_deliveries (id, endpoint_id, message_id, event_type, status, attempts, "
    "created_at) SELECT gen_random_uuid(), (SELECT id FROM webhook_endpoints ORDER BY created_at, id "
    "LIMIT 1), m.id, 'x.y', 'delivered', 1, m.created_at FROM webhook_messages m",
]
LOADS["shipping"] += _WEBHOOKS
LOADS["support"] += _WEBHOOKS

#: The table each list reads, and the path parameters of the loaded data.
TABLES = {
    "/v1/items": "items",
    "/v1/warehouses": "warehouses",
    "/v1/warehouses/AMS/locations": "locations",
    "/v1/stock": "stock_levels",
    "/v1/movements": "movements",
    "/v1/reservations": "reservations",
    "/v1/carriers": "carriers",
    "/v1/shipments": "shipments",
    collection("shipping"): "webhook_endpoints",
    collection("shipping") + "/{endpoint}/deliveries": "webhook_deliveries",
    "/v1/tickets": "tickets",
    "/v1/tickets/{ticket}/comments": "ticket_comments",
    collection("support"): "webhook_endpoints",
    collection("support") + "/{endpoint}/deliveries": "webhook_deliveries",
}


@dataclass(frozen=True)
class Search:
    path: str
    q: str
    table: str
    index: str


SEARCHES = {
    "inventory": [Search("/v1/items", "md5-of-77", "items", "ix_items_name_trgm")],
    "shipping": [
        Search("/v1/shipments", "md5-of-77", "shipments", "ix_shipments_recipient_name_trgm"),
        Search("/v1/shipments", "ORDER-7777", "shipments", "ix_shipments_reference_trgm"),
    ],
}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _plan_problems(nodes: list[dict[str, Any]], table: str) -> list[str]:
    problems = []
    if any(n["Node Type"] == "Sort" for n in nodes):
        problems.append("a Sort node")
    if any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") == table for n in nodes):
        problems.append(f"a Seq Scan on {table}")
    if not any(
        n["Node Type"] in ("Index Scan", "Index Only Scan") and n.get("Relation Name") == table for n in nodes
    ):
        problems.append(f"no index scan on {table}")
    return problems


class Statements:
    """What the app's read engine runs while a request is served."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.seen: list[tuple[str, Any]] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        self.seen.append((statement, parameters))

    def reading(self, table: str) -> tuple[str, Any]:
        """The list's own statement: the one selecting from ``table`` with a LIMIT."""
        found = [s for s in self.seen if f"FROM {table}" in s[0] and "LIMIT" in s[0]]
        assert len(found) == 1, f"{table}: {[s for s, _ in self.seen]}"
        return found[0]


def _explain(engine: Any, statement: str, parameters: Any) -> list[dict[str, Any]]:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        (document,) = cursor.fetchone()
        raw.rollback()
    finally:
        raw.close()
    return list(_nodes(document[0]["Plan"]))


def _load(client: Any, service: str) -> dict[str, str]:
    with client.engine.begin() as conn:
        # The app's engine has a statement timeout for requests; a bulk load is not one.
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        for statement in LOADS[service]:
            conn.execute(text(statement))
        if service == "inventory":
            conn.execute(text("UPDATE warehouses SET code = 'AMS' WHERE id = 1"))
        values = {}
        if service != "inventory":
            endpoint = "SELECT id FROM webhook_endpoints ORDER BY created_at, id LIMIT 1"
            values["endpoint"] = conn.execute(text(endpoint)).scalar_one()
        if service == "support":
            ticket = "SELECT id FROM tickets ORDER BY number LIMIT 1"
            values["ticket"] = conn.execute(text(ticket)).scalar_one()
    with client.engine.connect() as conn:
        conn.execute(text("COMMIT"))  # ANALYZE cannot run inside a transaction block
        conn.execute(text("ANALYZE"))
    return values


def _md5_of_77() -> str:
    import hashlib

    return hashlib.md5(b"77").hexdigest()[:10]


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_every_sort_of_every_list_is_an_index_scan_at_100k_rows(service_client, service):
    client = service_client(service, "postgres")
    values = _load(client, service)
    read = client.registry["dbengine_read"]
    admin = client.as_()
    failures: list[str] = []
    checked = 0
    for listing in (item for item in LISTINGS if item.service == service):
        path = listing.path.format(**values)
        table = TABLES[listing.path]
        for token in listing.sorts.choices:
            first = admin.get(path, {"sort": token, "limit": 50})
            cursor = first.json["next_cursor"]
            assert cursor, f"{path}?sort={token}: one page only"
            for params in ({"sort": token, "limit": 50}, {"sort": token, "limit": 50, "cursor": cursor}):
                with Statements(read) as statements:
                    admin.get(path, params)
                statement, parameters = statements.reading(table)
                problems = _plan_problems(_explain(read, statement, parameters), table)
                checked += 1
                if problems:
                    failures.append(f"{path} {params.get('sort')} cursor={'cursor' in params}: {problems}")
    for search in SEARCHES.get(service, ()):
        q = search.q.replace("md5-of-77", _md5_of_77())
        res = admin.get(search.path, {"q": q})
        assert res.json["items"], f"{search.path}?q={q} found nothing"
        with Statements(read) as statements:
            admin.get(search.path, {"q": q})
        statement, parameters = statements.reading(search.table)
        nodes = _explain(read, statement, parameters)
        checked += 1
        if not any(
            n["Node Type"] == "Bitmap Index Scan" and n.get("Index Name") == search.index for n in nodes
        ):
            failures.append(f"{search.path}?q={q}: no bitmap index scan on {search.index}: {nodes}")
    assert checked >= 4
    assert not failures, "\n".join(failures)

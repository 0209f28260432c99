"""``?sort=`` on every list, its cursors, ``?q=`` bounds and the ``Link`` header.

One table of every list of the three services (support's shipment read model aside: its
own helper). Each list is seeded with rows that tie on every sort key (the ties are
written straight into the table), then read under every allowed sort, ascending and
descending: the whole list in one page is ordered by the key, the descending list is the
ascending one reversed (ties broken by the id both ways), and paging through it two rows
at a time by ``next_cursor`` — or by the ``Link`` header — gives exactly the same rows in
the same order, none twice, none missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import MetaData, Table, select, text, update

from logistics_shared.sorting import Sorts

from ..helpers.shipping import CARRIER, DHL, shipment_body
from ..helpers.webhooks import add_delivery, collection, endpoint_body
from ..inventory.conftest import ADDRESS

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def tie(client: Any, table: str, column: str, values: list[Any], key: str = "id") -> None:
    """Give the rows of ``table`` (in ``key`` order) the ``values`` in turn: rows that tie.
    (Through the reflected table, so a datetime is stored as the app stores it.)"""
    with client.engine.begin() as conn:
        t = Table(table, MetaData(), autoload_with=conn)
        ids = conn.execute(select(t.c[key]).order_by(t.c[key])).scalars().all()
        for index, ident in enumerate(ids):
            conn.execute(update(t).where(t.c[key] == ident).values({column: values[index % len(values)]}))


def seed_inventory(client: Any) -> dict[str, str]:
    admin = client.as_()
    for code in ("AMS", "RTM", "BER"):
        admin.post_json("/v1/warehouses", {"code": code, "name": f"Warehouse {code}", "address": ADDRESS})
    for index, name in enumerate(("Mug", "Mug", "Tee", "Mug", "Cap", "Bag")):
        item = {"sku": f"SKU-{index}", "name": name, "unit_weight_g": 1, "length_mm": 1, "width_mm": 1}
        admin.post_json("/v1/items", {**item, "height_mm": 1})
    for code in ("B-2", "A-1", "C-3", "A-2"):
        admin.post_json("/v1/warehouses/AMS/locations", {"code": code})
    for index, (warehouse, quantity) in enumerate(
        (("AMS", 5), ("RTM", 5), ("AMS", 7), ("BER", 5), ("RTM", 7))
    ):
        admin.post_json("/v1/receipts", {"warehouse": warehouse, "sku": f"SKU-{index}", "quantity": quantity})
    for index in range(4):
        lines = [{"sku": "SKU-0", "quantity": 1}]
        admin.post_json("/v1/reservations", {"warehouse": "AMS", "reference": f"SO-{index}", "lines": lines})
    tie(client, "items", "created_at", [T0, T1, T0])
    # The ledger is append-only (no UPDATE): ties are adjustments that cancel out, written
    # at two instants, so on_hand == the sum of movements still holds.
    with client.engine.begin() as conn:
        movements = Table("movements", MetaData(), autoload_with=conn)
        ids = conn.execute(text("SELECT i.id, w.id FROM items i, warehouses w WHERE i.sku = 'SKU-0'"))
        item, warehouse = ids.first()
        for at, quantity in ((T0, 3), (T0, -3), (T1, 2), (T1, -2)):
            row = {"item_id": item, "warehouse_id": warehouse, "kind": "adjustment", "reason": "count"}
            conn.execute(movements.insert().values(**row, quantity=quantity, actor="test", created_at=at))
    tie(client, "reservations", "created_at", [T0, T1], key="id")
    return {}


def seed_shipping(client: Any) -> dict[str, str]:
    admin = client.as_()
    admin.post_json("/v1/carriers", CARRIER)
    admin.post_json("/v1/carriers", DHL)
    for index in range(5):
        admin.post_json("/v1/shipments", shipment_body(reference=f"ORDER-{index}"))
    tie(client, "shipments", "created_at", [T0, T1, T0])
    tie(client, "shipments", "updated_at", [T1, T1, T0])
    tie(client, "shipments", "reference", ["ORDER-B", "ORDER-A", "ORDER-A"])
    return {"endpoint": seed_webhooks(client, "shipping")}


def seed_support(client: Any) -> dict[str, str]:
    agent = client.as_("support_agent")
    ticket = ""
    for index in range(5):
        ticket = agent.post_json("/v1/tickets", {"subject": f"Ticket {index}", "description": "d"}).json["id"]
    for index in range(5):
        agent.post_json(f"/v1/tickets/{ticket}/comments", {"body": f"Comment {index}"})
    tie(client, "tickets", "created_at", [T0, T1, T0], key="number")
    tie(client, "tickets", "updated_at", [T1, T0], key="number")
    tie(client, "ticket_comments", "created_at", [T0, T0, T1])
    return {"ticket": ticket, "endpoint": seed_webhooks(client, "support")}


def seed_webhooks(client: Any, service: str) -> str:
    admin = client.as_()
    endpoint = ""
    for index in range(4):
        body = endpoint_body(service, url=f"https://hooks.example.com/{index}")
        endpoint = admin.post_json(collection(service), body).json["id"]
    tie(client, "webhook_endpoints", "created_at", [T0, T1, T0])
    for index in range(5):
        add_delivery(client, endpoint, created_at=(T0, T1)[index % 2])
    return endpoint


@dataclass(frozen=True)
class Listing:
    service: str
    path: str
    sorts: Sorts
    #: What names a row in a page (a tuple of fields where one field does not).
    ident: tuple[str, ...]
    rows: int
    role: str = "admin"

    @property
    def id(self) -> str:
        return f"{self.service}:{self.path}"


def _sorts() -> dict[str, Sorts]:
    from inventory import models as inventory
    from logistics_shared.webhooks.tables import DELIVERY_SORTS, ENDPOINT_SORTS
    from shipping import models as shipping
    from support import models as support

    return {
        "items": inventory.ITEM_SORTS,
        "warehouses": inventory.WAREHOUSE_SORTS,
        "locations": inventory.LOCATION_SORTS,
        "stock": inventory.STOCK_SORTS,
        "movements": inventory.MOVEMENT_SORTS,
        "reservations": inventory.RESERVATION_SORTS,
        "carriers": shipping.CARRIER_SORTS,
        "shipments": shipping.SHIPMENT_SORTS,
        "tickets": support.TICKET_SORTS,
        "comments": support.COMMENT_SORTS,
        "endpoints": ENDPOINT_SORTS,
        "deliveries": DELIVERY_SORTS,
    }


SORTS = _sorts()
SEEDS: dict[str, Callable[[Any], dict[str, str]]] = {
    "inventory": seed_inventory,
    "shipping": seed_shipping,
    "support": seed_support,
}
LISTINGS = (
    Listing("inventory", "/v1/items", SORTS["items"], ("sku",), 6),
    Listing("inventory", "/v1/warehouses", SORTS["warehouses"], ("code",), 3),
    Listing("inventory", "/v1/warehouses/AMS/locations", SORTS["locations"], ("code",), 4),
    Listing("inventory", "/v1/stock", SORTS["stock"], ("sku", "warehouse"), 5),
    Listing("inventory", "/v1/movements", SORTS["movements"], ("id",), 9),
    Listing("inventory", "/v1/reservations", SORTS["reservations"], ("id",), 4),
    Listing("shipping", "/v1/carriers", SORTS["carriers"], ("code",), 2),
    Listing("shipping", "/v1/shipments", SORTS["shipments"], ("id",), 5),
    Listing("shipping", collection("shipping"), SORTS["endpoints"], ("id",), 4),
    Listing("shipping", collection("shipping") + "/{endpoint}/deliveries", SORTS["deliveries"], ("id",), 5),
    Listing("support", "/v1/tickets", SORTS["tickets"], ("id",), 5, "support_agent"),
    Listing("support", "/v1/tickets/{ticket}/comments", SORTS["comments"], ("id",), 5, "support_agent"),
    Listing("support", collection("support"), SORTS["endpoints"], ("id",), 4),
    Listing("support", collection("support") + "/{endpoint}/deliveries", SORTS["deliveries"], ("id",), 5),
)
SERVICES = sorted({listing.service for listing in LISTINGS})


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _ids(listing: Listing, items: list[dict[str, Any]]) -> list[Any]:
    return [tuple(item[name] for name in listing.ident) for item in items]


def _key(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) and value[:2] == "20" else value


def _follow(client: Any, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page, each fetched from the previous one's Link header (checked against
    ``next_cursor``)."""
    res = client.get(path, params)
    items = list(res.json["items"])
    while res.json["next_cursor"] is not None:
        link = res.headers["Link"]
        assert link.startswith("<") and link.endswith('>; rel="next"'), link
        url = urlsplit(link[1 : -len('>; rel="next"')])
        assert url.path == path and f"cursor={res.json['next_cursor']}" in url.query
        res = client.get(f"{url.path}?{url.query}")
        items += res.json["items"]
    assert "Link" not in res.headers  # the last page names no next one
    return items


@pytest.mark.parametrize("service", SERVICES)
def test_every_sort_of_every_list_is_ordered_and_pages_stably(service_client, service, backend):
    client = service_client(service, backend)
    values = SEEDS[service](client)
    failures: list[str] = []
    for listing in (item for item in LISTINGS if item.service == service):
        api = client.as_(listing.role)
        path = listing.path.format(**values)
        for name in (key.name for key in listing.sorts.keys):
            whole = {}
            for token in (name, f"-{name}"):
                items = api.get(path, {"sort": token, "limit": 200}).json["items"]
                whole[token] = items
                if len(items) != listing.rows:
                    failures.append(f"{path}?sort={token}: {len(items)} rows, not {listing.rows}")
                if items and name in items[0]:
                    keys = [_key(item[name]) for item in items]
                    if keys != sorted(keys, reverse=token.startswith("-")):
                        failures.append(f"{path}?sort={token}: not in order: {keys}")
                paged = _follow(api, path, {"sort": token, "limit": 2})
                if _ids(listing, paged) != _ids(listing, items):
                    failures.append(
                        f"{path}?sort={token}: pages {_ids(listing, paged)} != {_ids(listing, items)}"
                    )
            if _ids(listing, whole[f"-{name}"]) != _ids(listing, whole[name])[::-1]:
                failures.append(f"{path}?sort=-{name} is not ?sort={name} reversed (ties broken apart)")
        default = api.get(path, {"limit": 200}).json["items"]
        explicit = api.get(path, {"limit": 200, "sort": listing.sorts.default}).json["items"]
        if _ids(listing, default) != _ids(listing, explicit):
            failures.append(f"{path}: the default order is not sort={listing.sorts.default}")
    assert not failures, "\n".join(failures)


def test_newest_first_where_people_expect_it():
    assert SORTS["movements"].default == "-created_at"
    assert SORTS["shipments"].default == "-created_at"
    assert SORTS["tickets"].default == "-created_at"


def _pointer_details(res: Any) -> list[tuple[str, str]]:
    assert res.status_int == 422 and res.content_type == "application/problem+json", res.text
    return [(error["pointer"], error["detail"]) for error in res.json["errors"]]


@pytest.mark.parametrize("service", SERVICES)
def test_bad_sorts_and_a_cursor_of_another_sort_are_422s(service_client, service, backend):
    client = service_client(service, backend)
    values = SEEDS[service](client)
    failures: list[str] = []
    for listing in (item for item in LISTINGS if item.service == service):
        api = client.as_(listing.role)
        path = listing.path.format(**values)
        allowed = ", ".join(listing.sorts.choices)
        for bad in ("bogus", "-", "--created_at", "+created_at", " created_at", "created_at,id", "id", ""):
            res = api.get(path, {"sort": bad}, expect_errors=True)
            if res.status_int != 422 or _pointer_details(res) != [("/sort", f"Must be one of: {allowed}.")]:
                failures.append(f"{path}?sort={bad!r}: {res.status_int} {res.text[:200]}")
        first, other = listing.sorts.choices[0], listing.sorts.choices[1]
        cursor = api.get(path, {"sort": first, "limit": 1}).json["next_cursor"]
        assert cursor, f"{path}: seeded with one row only"
        res = api.get(path, {"sort": other, "cursor": cursor}, expect_errors=True)
        wanted = [("/cursor", f"This cursor belongs to sort={first}, not sort={other}: ")]
        found = (
            [(p, d[: len(wanted[0][1])]) for p, d in _pointer_details(res)] if res.status_int == 422 else []
        )
        if found != wanted:
            failures.append(f"{path}?sort={other}&cursor=<{first}>: {res.status_int} {res.text[:200]}")
        # The same cursor with its own sort still works: the 422 changed nothing.
        api.get(path, {"sort": first, "cursor": cursor, "limit": 1}, status=200)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("service", "path", "longest"), [("inventory", "/v1/items", 200), ("shipping", "/v1/shipments", 100)]
)
def test_q_has_bounds(service_client, service, path, longest, backend):
    api = service_client(service, backend).as_()
    assert api.get(path, {"q": "x" * longest}).json["items"] == []
    for bad in ("x" * (longest + 1), "x", "a\x00b"):
        res = api.get(path, {"q": bad}, expect_errors=True)
        assert [p for p, _ in _pointer_details(res)] == ["/q"], bad


def test_items_q_finds_names_anywhere_and_skus_by_prefix_in_any_case(service_client, backend):
    client = service_client("inventory", backend)
    admin = client.as_()
    for sku, name in (
        ("MUG-RED", "Red mug"),
        ("TEE-M", "T-shirt, MUG print"),
        ("CAP-1", "Cap"),
        ("XMUG", "Box"),
    ):
        item = {"sku": sku, "name": name, "unit_weight_g": 1, "length_mm": 1, "width_mm": 1, "height_mm": 1}
        admin.post_json("/v1/items", item)
    found = [i["sku"] for i in admin.get("/v1/items", {"q": "mug"}).json["items"]]
    assert found == ["MUG-RED", "TEE-M"]  # XMUG: a SKU matches by its prefix only
    assert [i["sku"] for i in admin.get("/v1/items", {"q": "ca", "sort": "-name"}).json["items"]] == ["CAP-1"]
    assert admin.get("/v1/items", {"q": "m%"}).json["items"] == []  # wildcards are literal


def test_shipments_q_looks_at_reference_recipient_and_postal_code(service_client, backend):
    client = service_client("shipping", backend)
    staff = client.as_("warehouse_staff", "AMS")
    made = {}
    for reference, name, postal in (
        ("WEB-1001", "Ada Lovelace", "1011 AB"),
        ("WEB-1002", "Grace Hopper", "3011 CD"),
        ("SHOP-77", "Alan Turing", "1011 XY"),
    ):
        body = shipment_body(reference=reference, name=name, postal_code=postal)
        made[reference] = staff.post_json("/v1/shipments", body).json["id"]

    def found(q: str) -> set[str]:
        return {s["reference"] for s in staff.get("/v1/shipments", {"q": q}).json["items"]}

    assert found("web-10") == {"WEB-1001", "WEB-1002"}
    assert found("hopper") == {"WEB-1002"}
    assert found("1011") == {"WEB-1001", "SHOP-77"}
    assert found("nobody") == set()
    other = client.as_("warehouse_staff", "RTM")
    assert other.get("/v1/shipments", {"q": "web"}).json["items"] == []  # not theirs


def test_the_link_header_keeps_every_parameter_and_replaces_the_cursor(service_client, backend):
    client = service_client("inventory", backend)
    seed_inventory(client)
    admin = client.as_()
    first = admin.get("/v1/items", {"sort": "-name", "q": "mu", "limit": 1})
    link = first.headers["Link"]
    url = urlsplit(link[1 : link.index(">")])
    # Relative, as Location is: nothing built from the client's Host header.
    assert url.scheme == "" and url.netloc == "" and url.path == "/v1/items"
    assert url.query == f"sort=-name&q=mu&limit=1&cursor={first.json['next_cursor']}"
    second = admin.get(
        "/v1/items", {"sort": "-name", "q": "mu", "limit": 1, "cursor": first.json["next_cursor"]}
    )
    assert (
        second.headers["Link"] != link and "cursor=" + first.json["next_cursor"] not in second.headers["Link"]
    )
    assert admin.get(f"{url.path}?{url.query}").json == second.json
    assert "Link" not in admin.get("/v1/items", {"limit": 200}).headers


def test_the_document_lists_each_lists_sorts_and_its_link_header(service_client):
    failures = []
    for service in SERVICES:
        document = service_client(service).as_().get("/openapi.json").json
        for listing in (item for item in LISTINGS if item.service == service):
            template = listing.path.replace("{ticket}", "{id}").replace("{endpoint}", "{id}")
            template = template.replace("/AMS/", "/{code}/")
            operation = document["paths"][template]["get"]
            sort = next(p for p in operation["parameters"] if p["name"] == "sort")
            if sort["schema"].get("enum") != list(listing.sorts.choices):
                failures.append(f"{template}: sort {sort['schema']}")
            if sort["schema"].get("default") != listing.sorts.default:
                failures.append(f"{template}: default {sort['schema']}")
            if "Link" not in operation["responses"]["200"].get("headers", {}):
                failures.append(f"{template}: no Link header documented")
        searched = {"inventory": ("/v1/items", 200), "shipping": ("/v1/shipments", 100)}
        if service in searched:
            path, longest = searched[service]
            q = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "q")
            if q["schema"].get("maxLength") != longest:
                failures.append(f"{path}: q {q['schema']}")
    assert not failures, "\n".join(failures)


def test_a_cursor_of_one_list_is_refused_by_another(service_client, backend):
    """Cursors name their sort: one made for items by name means nothing to warehouses."""
    client = service_client("inventory", backend)
    seed_inventory(client)
    admin = client.as_()
    cursor = admin.get("/v1/items", {"sort": "name", "limit": 1}).json["next_cursor"]
    res = admin.get("/v1/warehouses", {"cursor": cursor}, expect_errors=True)
    assert [p for p, _ in _pointer_details(res)] == ["/cursor"]
    made_up = str(uuid.uuid4())
    res = admin.get("/v1/items", {"cursor": made_up.replace("-", "")}, expect_errors=True)
    assert [p for p, _ in _pointer_details(res)] == ["/cursor"]

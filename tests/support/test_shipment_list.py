"""``GET /v1/shipments``: support's shipment read model listed, filtered, sorted and paged
(the read model filled as the worker fills it, through the handler)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from support import handlers

from ..helpers.support import deliver, envelope, state

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

#: name -> (reference, warehouse, status, minutes after T0 of its last change, tracking number)
SHIPMENTS = {
    "a": ("R-1001", "AMS", "awaiting_stock", 0, None),
    "b": ("R-1002", "AMS", "on_hold", 10, None),
    "c": ("R-1003", "RTM", "label_purchased", 20, "1ZC"),
    "d": ("R-1001", "RTM", "ready", 30, None),  # the same order reference from another warehouse
    "e": ("R-1005", "AMS", "label_purchased", 40, "1ZE"),
    "f": ("R-1000", "AMS", "cancelled", 50, None),
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(service_client, request):
    sup = service_client("support", request.param)
    ids = {}
    for name, (reference, warehouse, status, minutes, number) in SHIPMENTS.items():
        sid = ids[name] = str(uuid.uuid4())
        at = T0 + timedelta(minutes=minutes)
        data = {**state(sid, status), "reference": reference, "warehouse": warehouse}
        if status == "awaiting_stock":
            event = envelope("shipment.requested", {**data, "lines": [{"sku": "SKU-1", "quantity": 1}]}, at)
        elif status == "cancelled":
            event = envelope(
                "shipment.cancelled", {k: data[k] for k in ("shipment_id", "reference", "warehouse")}, at
            )
        elif number:
            label = {
                "carrier": "POSTNL",
                "service": "standard",
                "tracking_number": number,
                "reservation_id": None,
            }
            event = envelope("shipment.label_purchased", {**data, **label}, at)
        elif status == "on_hold":
            event = envelope("shipment.on_hold", {**data, "reason": "shortage", "detail": "short"}, at)
        else:
            event = envelope("shipment.ready", {**data, "reservation_id": str(uuid.uuid4())}, at)
        deliver(sup, handlers.shipment_view, event)
    return sup, ids


def listed(sup, ids, **query):
    names = {sid: name for name, sid in ids.items()}
    body = sup.as_("support_agent").get("/v1/shipments", query).json
    return "".join(names[s["shipment_id"]] for s in body["items"])


def at(minutes):
    return (T0 + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, "fedcba"),  # newest change first
        ({"status": "label_purchased"}, "ec"),
        ({"status": "delivered"}, ""),
        ({"warehouse": "RTM"}, "dc"),
        ({"warehouse": "AMS", "status": "on_hold"}, "b"),
        ({"reference": "R-1001"}, "da"),
        ({"reference": "R-1001", "warehouse": "AMS"}, "a"),
        ({"tracking_number": "1ZE"}, "e"),
        ({"since": at(20)}, "fedc"),  # at or after
        ({"until": at(20)}, "ba"),  # before
        ({"since": at(10), "until": at(40)}, "dcb"),
        ({"since": at(40), "until": at(10)}, ""),
        ({"since": at(20), "warehouse": "AMS"}, "fe"),
        ({"sort": "updated_at"}, "abcdef"),
        ({"sort": "reference"}, "fadbce"),  # ties (R-1001) by shipment id
        ({"sort": "-reference"}, "ecbdaf"),
        ({"sort": "reference", "warehouse": "AMS"}, "fabe"),
    ],
)
def test_filters_and_sorts(world, query, expected):
    sup, ids = world
    if query.get("sort", "").endswith("reference"):
        # R-1001 is a and d: the tie goes by shipment id (descending when the sort is).
        first, second = sorted(["a", "d"], key=lambda n: ids[n], reverse=query["sort"].startswith("-"))
        expected = expected.replace("ad", first + second).replace("da", first + second)
    assert listed(sup, ids, **query) == expected


@pytest.mark.parametrize("sort", ["-updated_at", "updated_at", "reference", "-reference"])
@pytest.mark.parametrize("limit", [1, 2, 4])
def test_every_sort_pages_through_every_row_once_in_order(world, sort, limit):
    sup, ids = world
    agent = sup.as_("support_agent")
    whole = [s["shipment_id"] for s in agent.get("/v1/shipments", {"sort": sort}).json["items"]]
    paged, cursor = [], None
    for _ in range(10):
        query = {"sort": sort, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = agent.get("/v1/shipments", query).json
        assert len(page["items"]) <= limit
        paged += [s["shipment_id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == whole and sorted(paged) == sorted(ids.values())
    # A cursor is for the sort it was made with.
    first = agent.get("/v1/shipments", {"sort": sort, "limit": 1}).json["next_cursor"]
    other = next(s for s in ("-updated_at", "reference") if s != sort)
    agent.get("/v1/shipments", {"sort": other, "cursor": first}, status=422)


def test_each_item_is_the_shipment_with_its_tickets(world):
    sup, ids = world
    trouble = envelope(
        "shipment.exception",
        {
            **state(ids["e"], "exception"),
            "reference": "R-1005",
            "previous_status": "in_transit",
            "tracking": {
                "status": "exception",
                "occurred_at": at(60),
                "source": "carrier",
                "description": "Lost",
            },
        },
        T0 + timedelta(minutes=60),
    )
    deliver(sup, handlers.shipment_view, trouble)
    deliver(sup, handlers.shipment_trouble, trouble)
    (item,) = sup.as_("admin").get("/v1/shipments", {"status": "exception"}).json["items"]
    single = sup.as_("admin").get(f"/v1/shipments/{ids['e']}").json
    assert item == single
    assert [t["number"] for t in item["tickets"]] and item["tracking_number"] == "1ZE"
    assert item["tracking"][0]["description"] == "Lost"


def test_who_may_list(world):
    sup, ids = world
    for role in ("admin", "support_agent", "service"):
        assert len(sup.as_(role).get("/v1/shipments").json["items"]) == len(ids)
    # Warehouse staff see their shipments in shipping; the read model is not theirs.
    sup.as_("warehouse_staff", "AMS").get("/v1/shipments", status=403)
    sup.anonymous.get("/v1/shipments", status=401)

"""Receipts, adjustments, transfers, the ledger and stock levels over HTTP."""

from __future__ import annotations

from ..invariants import assert_inventory_invariants, outbox_types, stock_outbox_types
from .conftest import receive


def level(client, sku="SKU-1", warehouse="AMS"):
    body = client.as_().get("/v1/stock", {"sku": sku, "warehouse": warehouse}).json
    return body["items"][0] if body["items"] else None


def test_receipt_writes_ledger_level_and_event(inv):
    res = receive(inv, "AMS", "SKU-1", 10)
    assert res.status_int == 201
    assert res.json["stock"] == {
        "sku": "SKU-1",
        "warehouse": "AMS",
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
    }
    moves = inv.as_().get("/v1/movements", {"sku": "SKU-1"}).json["items"]
    assert [(m["kind"], m["quantity"]) for m in moves] == [("receipt", 10)]
    assert stock_outbox_types(inv.engine) == ["stock.received"]
    assert_inventory_invariants(inv.engine)


def test_receipt_into_a_location(inv):
    inv.as_().post_json(
        "/v1/warehouses/AMS/locations", {"code": "A-01-3", "description": "Aisle A"}, status=201
    )
    res = inv.as_().post_json(
        "/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 2, "location": "A-01-3"}
    )
    assert res.status_int == 201
    moves = inv.as_().get("/v1/movements").json["items"]
    assert moves[0]["location"] == "A-01-3"
    res = inv.as_().post_json(
        "/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 2, "location": "NOPE"}, status=422
    )
    assert res.json["errors"][0]["pointer"] == "/location"


def test_adjust_by_count_and_delta(inv):
    receive(inv, "AMS", "SKU-1", 10)
    staff = inv.as_("warehouse_staff", "AMS")
    res = staff.post_json(
        "/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "counted": 7, "reason": "count"}
    )
    assert res.json["delta"] == -3
    assert res.json["stock"]["on_hand"] == 7
    res = staff.post_json(
        "/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "delta": 5, "reason": "found"}
    )
    assert res.json["stock"]["on_hand"] == 12
    res = staff.post_json(
        "/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "counted": 12, "reason": "count"}
    )
    assert res.json["movement_id"] is None and res.json["delta"] == 0
    movements = inv.as_().get("/v1/movements", {"sort": "created_at"}).json["items"]  # oldest first
    kinds = [(m["kind"], m["quantity"], m["reason"]) for m in movements]
    assert kinds == [("receipt", 10, None), ("adjustment", -3, "count"), ("adjustment", 5, "found")]
    assert_inventory_invariants(inv.engine)


def test_count_below_reserved_is_409_naming_reserved(inv):
    receive(inv, "AMS", "SKU-1", 10)
    inv.as_().post_json(
        "/v1/reservations",
        {"warehouse": "AMS", "reference": "S-1", "lines": [{"sku": "SKU-1", "quantity": 6}]},
    )
    res = inv.as_().post_json(
        "/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "counted": 5, "reason": "count"}, status=409
    )
    assert res.json["reserved"] == 6 and "6" in res.json["detail"]
    res = inv.as_().post_json(
        "/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "delta": -5, "reason": "damage"}, status=409
    )
    assert res.json["reserved"] == 6
    assert level(inv)["on_hand"] == 10
    assert_inventory_invariants(inv.engine)


def test_adjustment_needs_exactly_one_of_counted_or_delta(inv):
    for body in ({}, {"counted": 1, "delta": 1}):
        res = inv.as_().post_json(
            "/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "reason": "count", **body}, status=422
        )
        assert res.json["errors"][0]["pointer"] == "/counted"


def test_transfer_moves_stock_and_refuses_more_than_available(inv):
    receive(inv, "AMS", "SKU-1", 10)
    res = inv.as_().post_json(
        "/v1/transfers", {"from_warehouse": "AMS", "to_warehouse": "RTM", "sku": "SKU-1", "quantity": 4}
    )
    assert res.json["from_stock"]["on_hand"] == 6 and res.json["to_stock"]["on_hand"] == 4
    res = inv.as_().post_json(
        "/v1/transfers",
        {"from_warehouse": "RTM", "to_warehouse": "AMS", "sku": "SKU-1", "quantity": 5},
        status=409,
    )
    assert res.json["available"] == 4
    inv.as_().post_json(
        "/v1/transfers",
        {"from_warehouse": "AMS", "to_warehouse": "AMS", "sku": "SKU-1", "quantity": 1},
        status=422,
    )
    assert level(inv, warehouse="RTM")["on_hand"] == 4
    assert stock_outbox_types(inv.engine) == ["stock.received", "stock.transferred"]
    assert_inventory_invariants(inv.engine)


def test_transfer_needs_access_to_both_warehouses(inv):
    receive(inv, "AMS", "SKU-1", 10)
    staff = inv.as_("warehouse_staff", "AMS")
    res = staff.post_json(
        "/v1/transfers",
        {"from_warehouse": "AMS", "to_warehouse": "RTM", "sku": "SKU-1", "quantity": 1},
        status=422,
    )
    assert res.json["errors"] == [{"pointer": "/to_warehouse", "detail": "Unknown warehouse 'RTM'."}]


def test_stock_low_is_emitted_once_when_crossing_the_reorder_point(inv):
    receive(inv, "AMS", "SKU-1", 5)  # reorder point is 3
    staff = inv.as_()
    staff.post_json("/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "delta": -1, "reason": "damage"})
    staff.post_json("/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "delta": -2, "reason": "damage"})
    staff.post_json("/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "delta": -1, "reason": "damage"})
    assert outbox_types(inv.engine).count("stock.low") == 1
    receive(inv, "AMS", "SKU-1", 5)
    staff.post_json(
        "/v1/reservations", {"warehouse": "AMS", "reference": "R", "lines": [{"sku": "SKU-1", "quantity": 5}]}
    )
    assert outbox_types(inv.engine).count("stock.low") == 2


def test_movements_filters_and_pagination(inv):
    for _ in range(5):
        receive(inv, "AMS", "SKU-1", 1)
    receive(inv, "RTM", "SKU-2", 1)
    admin = inv.as_()
    page = admin.get("/v1/movements", {"limit": 2, "sku": "SKU-1"}).json
    seen = [m["id"] for m in page["items"]]
    while page["next_cursor"]:
        page = admin.get("/v1/movements", {"limit": 2, "sku": "SKU-1", "cursor": page["next_cursor"]}).json
        seen += [m["id"] for m in page["items"]]
    assert len(seen) == 5 == len(set(seen))
    assert len(admin.get("/v1/movements", {"warehouse": "RTM"}).json["items"]) == 1
    assert admin.get("/v1/movements", {"until": "2000-01-01T00:00:00Z"}).json["items"] == []
    assert len(admin.get("/v1/movements", {"since": "2000-01-01T00:00:00Z"}).json["items"]) == 6
    admin.get("/v1/movements", {"since": "yesterday"}, status=422)
    admin.get("/v1/movements", {"cursor": "!!!"}, status=422)


def test_staff_only_see_their_warehouses(inv):
    receive(inv, "AMS", "SKU-1", 1)
    receive(inv, "RTM", "SKU-1", 1)
    staff = inv.as_("warehouse_staff", "AMS")
    assert [s["warehouse"] for s in staff.get("/v1/stock").json["items"]] == ["AMS"]
    assert {m["warehouse"] for m in staff.get("/v1/movements").json["items"]} == {"AMS"}
    assert [w["code"] for w in staff.get("/v1/warehouses").json["items"]] == ["AMS"]
    staff.get("/v1/warehouses/RTM", status=404)
    staff.get("/v1/warehouses/RTM/locations", status=404)
    staff.post_json("/v1/receipts", {"warehouse": "RTM", "sku": "SKU-1", "quantity": 1}, status=422)


def test_ledger_is_append_only_in_the_database(inv):
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    receive(inv, "AMS", "SKU-1", 1)
    for statement in ("UPDATE movements SET quantity = 5", "DELETE FROM movements"):
        with pytest.raises(DBAPIError, match="append-only"), inv.engine.begin() as conn:
            conn.execute(text(statement))


def test_database_refuses_reserved_above_on_hand(inv):
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    receive(inv, "AMS", "SKU-1", 1)
    with pytest.raises(IntegrityError), inv.engine.begin() as conn:
        conn.execute(text("UPDATE stock_levels SET reserved = 2"))

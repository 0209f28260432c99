"""Reservations: all-or-nothing, release, consume, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from inventory.domain.sweeper import sweep_expired

from ..invariants import assert_inventory_invariants, outbox_types, stock_outbox_types
from .conftest import receive


def reserve(client, lines, reference="SHIP-1", status=201, **extra):
    body = {"warehouse": "AMS", "reference": reference, "lines": lines, **extra}
    return client.as_().post_json("/v1/reservations", body, status=status)


def stock(client, sku="SKU-1"):
    return client.as_().get("/v1/stock", {"sku": sku, "warehouse": "AMS"}).json["items"][0]


def test_shortage_rejects_every_line_and_lists_each(inv):
    receive(inv, "AMS", "SKU-1", 5)
    receive(inv, "AMS", "SKU-2", 1)
    res = reserve(inv, [{"sku": "SKU-1", "quantity": 5}, {"sku": "SKU-2", "quantity": 3}], status=409)
    assert res.json["shortages"] == [{"sku": "SKU-2", "requested": 3, "available": 1}]
    assert stock(inv)["reserved"] == 0, "the satisfiable line must not stay reserved"
    assert "stock.reserved" not in outbox_types(inv.engine)
    assert_inventory_invariants(inv.engine)


def test_reserve_then_consume_issues_stock(inv):
    receive(inv, "AMS", "SKU-1", 5)
    res = reserve(inv, [{"sku": "SKU-1", "quantity": 2}])
    rid = res.json["id"]
    assert res.headers["Location"].endswith(f"/v1/reservations/{rid}")
    assert stock(inv) | {} == {
        "sku": "SKU-1",
        "warehouse": "AMS",
        "on_hand": 5,
        "reserved": 2,
        "available": 3,
    }
    done = inv.as_().post(f"/v1/reservations/{rid}/consume").json
    assert done["status"] == "consumed" and done["closed_at"]
    assert stock(inv)["on_hand"] == 3 and stock(inv)["reserved"] == 0
    issues = inv.as_().get("/v1/movements", {"kind": "issue"}).json["items"]
    assert [(m["quantity"], m["reservation_id"]) for m in issues] == [(-2, rid)]
    res = inv.as_().post(f"/v1/reservations/{rid}/release", status=409)
    assert res.json["reservation_status"] == "consumed"
    assert stock_outbox_types(inv.engine) == ["stock.received", "stock.reserved", "stock.issued"]
    assert_inventory_invariants(inv.engine)


def test_release_gives_stock_back_once(inv):
    receive(inv, "AMS", "SKU-1", 5)
    rid = reserve(inv, [{"sku": "SKU-1", "quantity": 5}]).json["id"]
    inv.as_().post(f"/v1/reservations/{rid}/release", status=200)
    inv.as_().post(f"/v1/reservations/{rid}/release", status=409)
    inv.as_().post(f"/v1/reservations/{rid}/consume", status=409)
    assert stock(inv)["available"] == 5
    assert_inventory_invariants(inv.engine)


def test_unknown_or_foreign_reservation_is_404(inv):
    receive(inv, "AMS", "SKU-1", 5)
    rid = reserve(inv, [{"sku": "SKU-1", "quantity": 1}]).json["id"]
    inv.as_().get("/v1/reservations/00000000-0000-0000-0000-000000000000", status=404)
    inv.as_().get("/v1/reservations/not-a-uuid", status=404)
    inv.as_("warehouse_staff", "RTM").get(f"/v1/reservations/{rid}", status=404)
    inv.as_("warehouse_staff", "RTM").post(f"/v1/reservations/{rid}/release", status=404)
    assert inv.as_("warehouse_staff", "AMS").get(f"/v1/reservations/{rid}").json["id"] == rid


def test_list_reservations_filters_and_pages(inv):
    receive(inv, "AMS", "SKU-1", 50)
    ids = [reserve(inv, [{"sku": "SKU-1", "quantity": 1}], reference=f"S-{i}").json["id"] for i in range(5)]
    inv.as_().post(f"/v1/reservations/{ids[0]}/release")
    admin = inv.as_()
    assert len(admin.get("/v1/reservations", {"status": "active"}).json["items"]) == 4
    assert [r["id"] for r in admin.get("/v1/reservations", {"reference": "S-3"}).json["items"]] == [ids[3]]
    page = admin.get("/v1/reservations", {"limit": 2}).json
    seen = [r["id"] for r in page["items"]]
    while page["next_cursor"]:
        page = admin.get("/v1/reservations", {"limit": 2, "cursor": page["next_cursor"]}).json
        seen += [r["id"] for r in page["items"]]
    assert sorted(seen) == sorted(ids)


def _age(client, rid):
    past = datetime.now(UTC) - timedelta(seconds=1)
    with client.engine.begin() as conn:
        conn.execute(text("UPDATE reservations SET expires_at = :t WHERE id = :id"), {"t": past, "id": rid})


def test_sweeper_expires_due_reservations(inv):
    receive(inv, "AMS", "SKU-1", 5)
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    rid = reserve(inv, [{"sku": "SKU-1", "quantity": 4}], expires_at=soon).json["id"]
    keep = reserve(inv, [{"sku": "SKU-1", "quantity": 1}], reference="keep").json["id"]
    assert sweep_expired(inv.registry["dbsession_factory"], producer="inventory") == 0
    _age(inv, rid)
    inv.as_().post(f"/v1/reservations/{rid}/consume", status=409)  # expired, even before the sweep
    assert sweep_expired(inv.registry["dbsession_factory"], producer="inventory") == 1
    assert inv.as_().get(f"/v1/reservations/{rid}").json["status"] == "expired"
    assert inv.as_().get(f"/v1/reservations/{keep}").json["status"] == "active"
    assert stock(inv)["reserved"] == 1
    assert outbox_types(inv.engine).count("stock.released") == 1
    assert sweep_expired(inv.registry["dbsession_factory"], producer="inventory") == 0
    assert_inventory_invariants(inv.engine)


def test_reserving_expires_the_rows_it_touches(inv):
    receive(inv, "AMS", "SKU-1", 5)
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    rid = reserve(inv, [{"sku": "SKU-1", "quantity": 5}], expires_at=soon).json["id"]
    _age(inv, rid)
    # No sweep ran: the new reservation finds the stock freed by the expired one.
    new = reserve(inv, [{"sku": "SKU-1", "quantity": 5}], reference="SHIP-2").json
    assert new["status"] == "active"
    assert inv.as_().get(f"/v1/reservations/{rid}").json["status"] == "expired"
    assert stock(inv)["reserved"] == 5
    assert outbox_types(inv.engine)[-2:] == ["stock.released", "stock.reserved"]
    assert_inventory_invariants(inv.engine)


def test_expiry_must_be_in_the_future(inv):
    receive(inv, "AMS", "SKU-1", 5)
    res = reserve(inv, [{"sku": "SKU-1", "quantity": 1}], expires_at="2001-01-01T00:00:00Z", status=422)
    assert res.json["errors"][0]["pointer"] == "/expires_at"


def test_service_role_reserves_support_agent_only_reads(inv):
    receive(inv, "AMS", "SKU-1", 5)
    body = {"warehouse": "AMS", "reference": "X", "lines": [{"sku": "SKU-1", "quantity": 1}]}
    inv.as_("service").post_json("/v1/reservations", body, status=201)
    inv.as_("support_agent").post_json("/v1/reservations", body, status=403)
    inv.as_("support_agent").post_json(
        "/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1}, status=403
    )
    inv.as_("service").post_json(
        "/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1}, status=403
    )
    assert inv.as_("support_agent").get("/v1/stock").json["items"]

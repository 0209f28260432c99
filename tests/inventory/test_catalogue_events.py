"""Inventory tells other services about its catalogue: item.* and warehouse.* events in
the outbox, in the transaction of the change, with the version consumers order them by."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import text

from ..conftest import Client
from .conftest import ADDRESS

ITEM = {
    "sku": "TEE-M",
    "name": "T-shirt, size M",
    "unit_weight_g": 180,
    "length_mm": 300,
    "width_mm": 250,
    "height_mm": 20,
    "reorder_point": 10,
}
SENDER = {**ADDRESS, "postal_code": "3011 AA", "phone": "+31 10 123 4567"}


def events(client: Client, *types: str) -> list[dict[str, Any]]:
    """The outbox rows of ``types`` in emit order, as envelopes."""
    with client.engine.connect() as conn:
        rows = conn.execute(text("SELECT event_type, event_version, payload FROM outbox ORDER BY id")).all()
    found = [orjson.loads(payload) for kind, _version, payload in rows if kind in types]
    assert all(e["producer"] == "inventory" and e["version"] == 1 for e in found)
    return found


def test_creating_and_changing_an_item_emits_its_events(inv: Client) -> None:
    admin = inv.as_()
    admin.post_json("/v1/items", ITEM, status=201)
    admin.patch_json("/v1/items/TEE-M", {"unit_weight_g": 200}, headers={"If-Match": '"1"'}, status=200)
    admin.patch_json("/v1/items/TEE-M", {"reorder_point": 4}, status=200)
    created, *updated = [
        e for e in events(inv, "item.created", "item.updated") if e["data"]["sku"] == "TEE-M"
    ]
    assert created["type"] == "item.created"
    expected = {k: v for k, v in ITEM.items() if k != "reorder_point"}
    assert created["data"] == {**expected, "version": 1}
    assert [(e["type"], e["data"]["version"], e["data"]["unit_weight_g"]) for e in updated] == [
        ("item.updated", 2, 200),
        ("item.updated", 3, 200),
    ]


def test_a_rejected_change_emits_nothing(inv: Client) -> None:
    admin = inv.as_()
    admin.post_json("/v1/items", ITEM, status=201)
    admin.post_json("/v1/items", ITEM, status=409)
    admin.patch_json("/v1/items/TEE-M", {"name": "x"}, headers={"If-Match": '"7"'}, status=412)
    mine = [e["type"] for e in events(inv, "item.created", "item.updated") if e["data"]["sku"] == "TEE-M"]
    assert mine == ["item.created"]


def test_creating_and_changing_a_warehouse_emits_its_address_and_phone(inv: Client) -> None:
    admin = inv.as_()
    res = admin.post_json("/v1/warehouses", {"code": "RTM2", "name": "Rotterdam 2", "address": ADDRESS})
    assert res.headers["ETag"] == '"1"'
    assert res.json["version"] == 1 and res.json["address"]["phone"] is None
    changed = admin.patch_json(
        "/v1/warehouses/RTM2", {"address": SENDER}, headers={"If-Match": '"1"'}, status=200
    )
    assert changed.headers["ETag"] == '"2"'
    assert changed.json["address"]["phone"] == "+31 10 123 4567"
    assert changed.json["name"] == "Rotterdam 2" and changed.json["updated_at"]
    assert admin.get("/v1/warehouses/RTM2").headers["ETag"] == '"2"'
    created, updated = [
        e for e in events(inv, "warehouse.created", "warehouse.updated") if e["data"]["code"] == "RTM2"
    ]
    assert created["type"] == "warehouse.created"
    assert created["data"]["name"] == "Rotterdam 2"
    assert created["data"]["address"]["city"] == "Rotterdam" and created["data"]["version"] == 1
    assert updated["type"] == "warehouse.updated"
    assert updated["data"]["address"]["phone"] == "+31 10 123 4567"
    assert updated["data"]["address"]["postal_code"] == "3011 AA"
    assert updated["data"]["version"] == 2


def test_a_stale_warehouse_change_is_412_and_emits_nothing(inv: Client) -> None:
    admin = inv.as_()
    admin.patch_json("/v1/warehouses/AMS", {"name": "Amsterdam"}, status=200)
    res = admin.patch_json("/v1/warehouses/AMS", {"name": "Again"}, headers={"If-Match": '"1"'}, status=412)
    assert res.json["current_etag"] == '"2"'
    assert [e["data"]["version"] for e in events(inv, "warehouse.updated")] == [2]


def test_staff_cannot_change_a_warehouse_and_see_only_their_own(inv: Client) -> None:
    staff = inv.as_("warehouse_staff", "AMS")
    staff.patch_json("/v1/warehouses/AMS", {"name": "Mine"}, status=403)
    assert staff.get("/v1/warehouses/RTM", status=404)
    assert events(inv, "warehouse.updated") == []


@pytest.mark.postgres
def test_the_set_based_import_emits_the_items_events(service_client, tmp_path) -> None:
    from inventory.domain import bulk
    from logistics_shared.identity import Identity
    from logistics_shared.security import Role

    inv = service_client("inventory", "postgres")
    inv.as_().post_json("/v1/items", {**ITEM, "sku": "OLD-1"}, status=201)
    rows = [
        (1, {**ITEM, "sku": "OLD-1", "unit_weight_g": 999}, frozenset(ITEM)),
        (2, {**ITEM, "sku": "NEW-1"}, frozenset(ITEM)),
        (3, {**ITEM, "sku": "OLD-1", "unit_weight_g": 999} | {"sku": "SAME"}, frozenset(ITEM)),
    ]
    factory = inv.registry["dbsession_factory"]
    with factory() as session, session.begin():
        # SAME exists already with these very values: unchanged, no event.
        session.execute(
            text(
                "INSERT INTO items (sku, name, unit_weight_g, length_mm, width_mm, height_mm, "
                "reorder_point, version, created_at, updated_at) VALUES ('SAME', :name, 999, 300, "
                "250, 20, 10, 1, now(), now())"
            ),
            {"name": ITEM["name"]},
        )
    with factory() as session, session.begin():
        outcomes = bulk.upsert_items(session, Identity("admin", Role.ADMIN), rows)
    assert outcomes == {1: "updated", 2: "created", 3: "unchanged"}
    found = [
        (e["type"], e["data"]["sku"], e["data"]["version"])
        for e in events(inv, "item.created", "item.updated")
    ]
    assert found == [("item.created", "OLD-1", 1), ("item.updated", "OLD-1", 2), ("item.created", "NEW-1", 1)]
    (update,) = events(inv, "item.updated")
    assert update["data"]["unit_weight_g"] == 999

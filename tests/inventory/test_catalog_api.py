"""Items (ETag / If-Match), warehouses and locations."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import ADDRESS

ITEM = {"sku": "NEW-1", "name": "New", "unit_weight_g": 1, "length_mm": 1, "width_mm": 1, "height_mm": 1}


def test_create_get_and_list_items(inv):
    admin = inv.as_()
    res = admin.post_json("/v1/items", ITEM, status=201)
    assert res.headers["ETag"] == '"1"'
    assert res.headers["Location"].endswith("/v1/items/NEW-1")
    assert res.json["reorder_point"] == 0
    assert admin.get("/v1/items/NEW-1").headers["ETag"] == '"1"'
    admin.post_json("/v1/items", ITEM, status=409)
    admin.get("/v1/items/NOPE", status=404)
    skus = [i["sku"] for i in admin.get("/v1/items").json["items"]]
    assert skus == ["NEW-1", "SKU-1", "SKU-2"]
    page = admin.get("/v1/items", {"limit": 2}).json
    assert len(page["items"]) == 2
    rest = admin.get("/v1/items", {"limit": 2, "cursor": page["next_cursor"]}).json
    assert [i["sku"] for i in rest["items"]] == ["SKU-2"]
    assert rest["next_cursor"] is None
    assert [i["sku"] for i in admin.get("/v1/items", {"sku_prefix": "SKU"}).json["items"]] == [
        "SKU-1",
        "SKU-2",
    ]


def test_patch_with_if_match_is_an_atomic_version_check(inv):
    admin = inv.as_()
    etag = admin.get("/v1/items/SKU-1").headers["ETag"]
    res = admin.patch_json("/v1/items/SKU-1", {"name": "Renamed"}, headers={"If-Match": etag})
    assert res.json["name"] == "Renamed"
    assert res.headers["ETag"] == '"2"'
    stale = admin.patch_json("/v1/items/SKU-1", {"name": "Again"}, headers={"If-Match": etag}, status=412)
    assert stale.json["current_etag"] == '"2"'
    admin.patch_json("/v1/items/SKU-1", {"name": "Again"}, headers={"If-Match": "garbage"}, status=412)
    admin.patch_json("/v1/items/SKU-1", {"sku": "other"}, status=422)
    admin.patch_json("/v1/items/SKU-1", {}, status=422)
    admin.patch_json("/v1/items/NOPE", {"name": "x"}, headers={"If-Match": '"1"'}, status=404)
    assert admin.get("/v1/items/SKU-1").json["name"] == "Renamed"


@pytest.mark.fresh_app
def test_concurrent_patches_with_the_same_etag_one_wins(inv):
    admin = inv.as_()

    def patch(name):
        return admin.patch_json(
            "/v1/items/SKU-2", {"name": name}, headers={"If-Match": '"1"'}, expect_errors=True
        ).status_int

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(patch, [f"n{i}" for i in range(8)]))
    assert statuses == [200] + [412] * 7


@pytest.mark.fresh_app
def test_concurrent_creates_of_one_sku_give_one_201_and_409s(inv):
    admin = inv.as_()

    def create(_):
        return admin.post_json("/v1/items", ITEM, expect_errors=True).status_int

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(create, range(8)))
    assert statuses == [201] + [409] * 7


def test_only_admins_manage_the_catalogue(inv):
    staff = inv.as_("warehouse_staff", "AMS")
    staff.post_json("/v1/items", ITEM, status=403)
    staff.patch_json("/v1/items/SKU-1", {"name": "x"}, status=403)
    staff.post_json("/v1/warehouses", {"code": "X", "name": "X", "address": ADDRESS}, status=403)
    staff.post_json("/v1/warehouses/AMS/locations", {"code": "L1"}, status=403)
    assert staff.get("/v1/items/SKU-1").json["sku"] == "SKU-1"


def test_locations_are_a_catalogue_per_warehouse(inv):
    admin = inv.as_()
    admin.post_json("/v1/warehouses/AMS/locations", {"code": "A-1"}, status=201)
    admin.post_json("/v1/warehouses/AMS/locations", {"code": "A-1"}, status=409)
    admin.post_json("/v1/warehouses/RTM/locations", {"code": "A-1"}, status=201)
    admin.post_json("/v1/warehouses/NOPE/locations", {"code": "A-1"}, status=404)
    assert [loc["code"] for loc in admin.get("/v1/warehouses/AMS/locations").json["items"]] == ["A-1"]
    warehouse = admin.get("/v1/warehouses/AMS").json
    assert warehouse["address"]["country"] == "NL"
    assert set(warehouse) == {"code", "name", "address", "version", "created_at", "updated_at"}

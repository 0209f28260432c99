"""One live shipment per (warehouse, reference): the 409 naming it, the explicit opt-out,
cancelled shipments, idempotent replays; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ..helpers.shipping import SHIPMENT

DUPLICATE = "urn:logistics:problem:duplicate-shipment-reference"


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def requested(client) -> int:
    with client.engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM outbox WHERE event_type = 'shipment.requested'")
        ).scalar_one()


def test_the_same_reference_again_is_a_409_naming_the_live_shipment(ship):
    staff = ship.as_("warehouse_staff", "AMS")
    first = staff.post_json("/v1/shipments", SHIPMENT, status=201).json
    res = staff.post_json("/v1/shipments", SHIPMENT, status=409)
    assert res.content_type == "application/problem+json"
    problem = res.json
    assert problem["type"] == DUPLICATE
    assert problem["title"] == "Duplicate shipment reference"
    assert problem["existing_shipment"] == {
        "id": first["id"],
        "href": f"/v1/shipments/{first['id']}",
        "reference": "ORDER-1",
        "warehouse": "AMS",
        "status": "awaiting_stock",
        "created_at": first["created_at"],
    }
    assert first["id"] in problem["detail"] and "allow_duplicate_reference" in problem["detail"]
    # Nothing was written: one shipment, one request to inventory.
    assert [s["id"] for s in staff.get("/v1/shipments").json["items"]] == [first["id"]]
    assert requested(ship) == 1
    # The href is where the existing shipment is.
    assert staff.get(problem["existing_shipment"]["href"]).json["id"] == first["id"]


def test_the_rule_is_per_warehouse_and_per_reference(ship):
    admin = ship.as_()
    admin.post_json("/v1/shipments", SHIPMENT, status=201)
    admin.post_json("/v1/shipments", {**SHIPMENT, "warehouse": "RTM"}, status=201)
    admin.post_json("/v1/shipments", {**SHIPMENT, "reference": "ORDER-1-B"}, status=201)
    admin.post_json("/v1/shipments", {**SHIPMENT, "reference": "order-1"}, status=201)  # exact match only
    admin.post_json("/v1/shipments", {**SHIPMENT, "warehouse": "RTM"}, status=409)


def test_allow_duplicate_reference_creates_another_and_later_creates_still_name_the_first(ship):
    admin = ship.as_()
    first = admin.post_json("/v1/shipments", SHIPMENT, status=201).json
    again = admin.post_json("/v1/shipments", {**SHIPMENT, "allow_duplicate_reference": True}, status=201).json
    assert again["id"] != first["id"] and again["reference"] == "ORDER-1"
    assert "allow_duplicate_reference" not in again  # an instruction, not a property of the shipment
    explicit_no = admin.post_json(
        "/v1/shipments", {**SHIPMENT, "allow_duplicate_reference": False}, status=409
    ).json
    assert explicit_no["existing_shipment"]["id"] == first["id"]  # the oldest live one
    # With the first cancelled, the allowed duplicate is the live one a create meets.
    admin.post_json(f"/v1/shipments/{first['id']}/cancel", {}, status=200)
    named = admin.post_json("/v1/shipments", SHIPMENT, status=409).json["existing_shipment"]
    assert named["id"] == again["id"]
    assert requested(ship) == 2


def test_a_cancelled_shipments_reference_can_be_used_again(ship):
    admin = ship.as_()
    first = admin.post_json("/v1/shipments", SHIPMENT, status=201).json
    admin.post_json(f"/v1/shipments/{first['id']}/cancel", {"reason": "wrong address"}, status=200)
    second = admin.post_json("/v1/shipments", SHIPMENT, status=201).json
    assert second["id"] != first["id"]
    assert (
        admin.post_json("/v1/shipments", SHIPMENT, status=409).json["existing_shipment"]["id"]
        == (second["id"])
    )


@pytest.mark.parametrize("status", ["ready", "on_hold", "label_purchased", "delivered", "returned"])
def test_every_state_but_cancelled_holds_the_reference(ship, status):
    admin = ship.as_()
    first = admin.post_json("/v1/shipments", SHIPMENT, status=201).json
    with ship.engine.begin() as conn:
        conn.execute(text("UPDATE shipments SET status = :s WHERE id = :i"), {"s": status, "i": first["id"]})
    named = admin.post_json("/v1/shipments", SHIPMENT, status=409).json["existing_shipment"]
    assert (named["id"], named["status"]) == (first["id"], status)


def test_an_idempotent_retry_replays_its_201_and_a_new_key_meets_the_409(ship):
    admin = ship.as_()
    first = admin.post_json("/v1/shipments", SHIPMENT, headers={"Idempotency-Key": "k-1"}, status=201)
    replay = admin.post_json("/v1/shipments", SHIPMENT, headers={"Idempotency-Key": "k-1"}, status=201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json["id"] == first.json["id"]
    assert replay.headers["Location"] == first.headers["Location"]
    other_key = admin.post_json("/v1/shipments", SHIPMENT, headers={"Idempotency-Key": "k-2"}, status=409)
    assert other_key.json["existing_shipment"]["id"] == first.json["id"]
    # The 409 was not stored under k-2: once the first is cancelled, the same retry creates.
    admin.post_json(f"/v1/shipments/{first.json['id']}/cancel", {}, status=200)
    created = admin.post_json("/v1/shipments", SHIPMENT, headers={"Idempotency-Key": "k-2"}, status=201)
    assert created.json["id"] != first.json["id"]
    assert requested(ship) == 2


def test_staff_of_another_warehouse_learn_nothing_from_the_check(ship):
    ship.as_().post_json("/v1/shipments", {**SHIPMENT, "warehouse": "RTM"}, status=201)
    res = ship.as_("warehouse_staff", "AMS").post_json(
        "/v1/shipments", {**SHIPMENT, "warehouse": "RTM"}, status=422
    )
    assert res.json["errors"] == [{"pointer": "/warehouse", "detail": "Unknown warehouse 'RTM'."}]


def test_the_409_is_in_the_openapi_document(ship):
    spec = ship.anonymous.get("/openapi.json").json
    answer = spec["paths"]["/v1/shipments"]["post"]["responses"]["409"]
    ref = answer["content"]["application/problem+json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schemas = spec["components"]["schemas"]
    problem = schemas[ref]
    assert "existing_shipment" in problem["properties"]
    assert problem["properties"]["type"]["enum"] == [DUPLICATE, "urn:logistics:problem:conflict"]
    existing = schemas[problem["properties"]["existing_shipment"]["$ref"].rsplit("/", 1)[1]]
    assert set(existing["required"]) == {"id", "href", "reference", "warehouse", "status", "created_at"}
    body = schemas[
        spec["paths"]["/v1/shipments"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "$ref"
        ].rsplit("/", 1)[1]
    ]
    assert body["properties"]["allow_duplicate_reference"]["type"] == "boolean"

"""Idempotency-Key: stored in the service's database with the response."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from ..invariants import row_counts
from ..inventory.conftest import receive, seed

BODY = {"warehouse": "AMS", "sku": "SKU-1", "quantity": 3}


@pytest.fixture(params=["sqlite", "postgres"])
def inv(service_client, request):
    client = service_client("inventory", request.param)
    seed(client)
    return client


def test_retry_replays_the_first_response_without_a_second_effect(inv):
    staff = inv.as_("warehouse_staff", "AMS", subject="ann")
    first = staff.post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "k1"}, status=201)
    again = staff.post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "k1"}, status=201)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert row_counts(inv.engine)["movements"] == 1


def test_same_key_other_body_is_422(inv):
    staff = inv.as_()
    staff.post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "k2"})
    res = staff.post_json(
        "/v1/receipts", {**BODY, "quantity": 4}, headers={"Idempotency-Key": "k2"}, status=422
    )
    assert res.json["errors"][0]["pointer"] == "/Idempotency-Key"
    assert row_counts(inv.engine)["movements"] == 1


def test_keys_are_per_caller(inv):
    inv.as_(subject="a").post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "same"})
    inv.as_(subject="b").post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "same"})
    assert row_counts(inv.engine)["movements"] == 2


def test_retry_while_first_is_running_is_409_and_a_stale_claim_is_taken_over(inv):
    staff = inv.as_(subject="c")
    now = datetime.now(UTC)
    with inv.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO idempotency_keys "
                "(caller, route, key, fingerprint, state, locked_until, created_at) "
                "VALUES ('admin:c', 'POST receipts', 'k3', 'f', 'running', :until, :now)"
            ),
            {"until": now + timedelta(seconds=30), "now": now},
        )
    res = staff.post_json(
        "/v1/receipts", BODY, headers={"Idempotency-Key": "k3"}, status=422
    )  # other fingerprint
    with inv.engine.begin() as conn:
        conn.execute(text("DELETE FROM idempotency_keys"))
    # Claim it with the right fingerprint by racing a real request: first make one that is "running".
    staff.post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "k4"})
    with inv.engine.begin() as conn:
        conn.execute(
            text("UPDATE idempotency_keys SET state = 'running', locked_until = :until"),
            {"until": now + timedelta(seconds=30)},
        )
    res = staff.post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "k4"}, status=409)
    assert res.headers["Retry-After"] == "1"
    with inv.engine.begin() as conn:
        conn.execute(
            text("UPDATE idempotency_keys SET locked_until = :past"), {"past": now - timedelta(seconds=1)}
        )
    staff.post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "k4"}, status=201)
    assert row_counts(inv.engine)["movements"] == 2


def test_a_failed_request_frees_its_key(inv):
    staff = inv.as_()
    body = {"warehouse": "AMS", "reference": "r", "lines": [{"sku": "SKU-1", "quantity": 5}]}
    staff.post_json("/v1/reservations", body, headers={"Idempotency-Key": "k5"}, status=409)
    assert row_counts(inv.engine)["idempotency_keys"] == 0
    receive(inv, "AMS", "SKU-1", 5)
    staff.post_json("/v1/reservations", body, headers={"Idempotency-Key": "k5"}, status=201)
    replay = staff.post_json("/v1/reservations", body, headers={"Idempotency-Key": "k5"}, status=201)
    assert (
        replay.headers["Location"].startswith("http://localhost/v1/reservations/")
        or replay.headers["Location"]
    )
    assert row_counts(inv.engine)["reservations"] == 1


def test_bad_keys_are_422(inv):
    inv.as_().post_json("/v1/receipts", BODY, headers={"Idempotency-Key": "x" * 256}, status=422)

"""Carrier webhooks (HMAC, timestamp window, replays, size) and the cached tracking lookup."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import text

from ..helpers.shipping import (
    event,
    labelled,
    post,
)


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def tracking_rows(client) -> int:
    with client.engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM tracking_events")).scalar_one()


def test_signed_events_move_the_shipment_once(ship):
    shipment_id, number = labelled(ship)
    first = post(ship, event(number)).json
    assert first == {"result": "accepted", "shipment_status": "in_transit"}
    replay = post(ship, event(number)).json  # the carrier retries the same event
    assert replay["result"] == "duplicate"
    assert tracking_rows(ship) == 1
    post(ship, event(number, "ev-2", "delivered"))
    late = post(ship, event(number, "ev-3", "in_transit")).json  # out of order: recorded, no regression
    assert late == {"result": "accepted", "shipment_status": "delivered"}
    shown = ship.as_().get(f"/v1/shipments/{shipment_id}").json
    assert shown["status"] == "delivered"
    assert shown["label"]["tracking_number"] == number
    assert [t["source"] for t in shown["tracking"]] == ["carrier:POSTNL"] * 3


@pytest.mark.parametrize(
    "tamper",
    [
        {"secret": "wrong-secret"},
        {"sign": False},
        {"timestamp": int(time.time()) - 3600},  # stale, correctly signed
        {"timestamp": int(time.time()) + 3600},
        {"carrier": "NOPE"},
        {"carrier": "DHL"},  # another carrier's secret
    ],
)
def test_unsigned_stale_or_foreign_requests_are_401_and_change_nothing(ship, tamper):
    _, number = labelled(ship)
    res = post(ship, event(number), status=401, **tamper)
    assert res.content_type == "application/problem+json"
    assert res.json["detail"] == "The webhook signature is missing, wrong or stale."
    assert tracking_rows(ship) == 0


def test_a_signature_is_checked_before_the_body_is_parsed(ship):
    labelled(ship)
    # Garbage with a bad signature is a 401, not a 400: unsigned input is never parsed.
    post(ship, {}, raw=b"{not json", secret="wrong", status=401)
    post(ship, {}, raw=b"{not json", status=400)
    post(ship, {}, raw=orjson.dumps({"event_id": "x"}), status=422)
    res = post(ship, {}, raw=b"x" * (ship.settings.max_body_bytes + 1), status=413)
    assert res.content_type == "application/problem+json"


def test_unknown_tracking_number_is_422(ship):
    labelled(ship)
    res = post(ship, event("ZZ0000000000"), status=422)
    assert res.json["errors"][0]["pointer"] == "/tracking_number"


def test_tracking_lookup_is_cached_and_invalidated_by_new_events(ship):
    shipment_id, number = labelled(ship)
    cache = ship.registry["tracking_cache"]
    first = ship.as_().get(f"/v1/tracking/{number}").json
    assert (first["status"], first["events"]) == ("label_purchased", [])
    ship.as_().get(f"/v1/tracking/{number}")
    assert cache.stats["local"] == 1
    post(ship, event(number))
    after = ship.as_().get(f"/v1/tracking/{number}").json
    assert after["status"] == "in_transit"
    assert after["events"][0]["location"] == "Amsterdam sorting centre"
    ship.as_("warehouse_staff", "RTM").get(f"/v1/tracking/{number}", status=404)  # cached, still scoped
    assert ship.as_("warehouse_staff", "AMS").get(f"/v1/tracking/{number}").json["shipment_id"] == shipment_id
    ship.as_().get("/v1/tracking/NOPE123", status=404)
    ship.anonymous.get(f"/v1/tracking/{number}", status=401)


@pytest.mark.redis
def test_tracking_lookup_is_shared_through_redis_between_replicas(
    service_client, database_factory, specs, tmp_path
):
    import uuid

    import redis

    from ..conftest import Client, make_settings
    from ..services import REDIS_URL, need_service

    need_service("Redis", "127.0.0.1", 6379)
    db = database_factory(specs["shipping"], "sqlite")
    replicas = []
    for _ in range(2):
        settings = make_settings("shipping", db, tmp_path, redis_url=REDIS_URL, cache_local_seconds=0)
        replicas.append(Client(specs["shipping"].configure(settings).make_wsgi_app(), settings))
    first, second = replicas
    _, number = labelled(first)
    key = f"logistics:tracking:{number}"
    server = redis.Redis.from_url(REDIS_URL)
    try:
        assert first.as_().get(f"/v1/tracking/{number}").json["status"] == "label_purchased"
        assert server.exists(key), "the lookup was written to Redis"
        assert second.as_().get(f"/v1/tracking/{number}").json["tracking_number"] == number
        assert second.registry["tracking_cache"].stats["shared"] == 1
        assert first.registry["tracking_cache"].stats["errors"] == 0
        post(first, event(number, f"ev-{uuid.uuid4().hex[:6]}"))
        assert not server.exists(key), "a new event invalidates the shared copy"
        assert second.as_().get(f"/v1/tracking/{number}").json["status"] == "in_transit"
    finally:
        server.delete(key)
        for replica in replicas:
            replica.engine.dispose()

"""Tracking events that must not move a shipment, event ids per parcel, and the cached
lookup forgotten by every path that changes what it shows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import text

from shipping.domain import lifecycle, shipments

from ..conftest import Client, make_settings
from ..helpers.shipping import SECRET, event, labelled, post, ready_shipment
from ..services import REDIS_URL, need_service


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def outbox_types(client: Client) -> list[str]:
    with client.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


def status_of(client: Client, shipment_id: str) -> str:
    return client.as_().get(f"/v1/shipments/{shipment_id}").json["status"]


def test_a_late_carrier_event_is_kept_but_does_not_move_the_shipment(ship):
    shipment_id, number = labelled(ship)
    # Times within the clock-skew allowance, after the shipment was created.
    post(ship, {**event(number, "ev-1", "in_transit"), "occurred_at": at(1)})
    post(ship, {**event(number, "ev-2", "out_for_delivery"), "occurred_at": at(3)})
    # The exception happened before the last scan: news for the history, not a status.
    late = post(ship, {**event(number, "ev-3", "exception"), "occurred_at": at(2)}).json
    assert late == {"result": "accepted", "shipment_status": "out_for_delivery"}
    shipment = ship.as_().get(f"/v1/shipments/{shipment_id}").json
    assert shipment["status"] == "out_for_delivery"
    assert [t["status"] for t in shipment["tracking"]] == ["in_transit", "exception", "out_for_delivery"]
    types = outbox_types(ship)
    assert "shipment.exception" not in types, "a stale exception must not open a ticket downstream"
    assert types.count("shipment.tracked") == 1
    # A late in_transit (which the lifecycle would allow after an exception) moves nothing either.
    post(ship, {**event(number, "ev-4", "delivered"), "occurred_at": at(4)})
    post(ship, {**event(number, "ev-5", "in_transit"), "occurred_at": at(3.5)})
    assert status_of(ship, shipment_id) == "delivered"


def test_staff_get_a_409_for_an_event_older_than_the_latest(ship):
    shipment_id, _number = labelled(ship)
    staff = ship.as_("warehouse_staff", "AMS")
    staff.post_json(
        f"/v1/shipments/{shipment_id}/tracking", {"status": "in_transit", "occurred_at": at(2)}, status=201
    )
    res = staff.post_json(
        f"/v1/shipments/{shipment_id}/tracking",
        {"status": "out_for_delivery", "occurred_at": at(1)},
        status=409,
    )
    assert res.json["current_status"] == "in_transit"
    assert status_of(ship, shipment_id) == "in_transit"


@pytest.mark.parametrize(
    ("label", "occurred_at"),
    [
        ("beyond the clock-skew allowance", lambda created: datetime.now(UTC) + timedelta(minutes=6)),
        ("a day ahead", lambda created: datetime.now(UTC) + timedelta(days=1)),
        ("before the shipment existed", lambda created: created - timedelta(seconds=1)),
        ("a year before the shipment", lambda created: created - timedelta(days=365)),
    ],
)
def test_impossible_event_times_are_422_and_record_nothing(ship, label, occurred_at):
    shipment_id, number = labelled(ship)
    created = datetime.fromisoformat(ship.as_().get(f"/v1/shipments/{shipment_id}").json["created_at"])
    when = occurred_at(created).isoformat()
    before = outbox_types(ship)
    res = post(ship, {**event(number), "occurred_at": when}, status=422).json
    assert [e["pointer"] for e in res["errors"]] == ["/occurred_at"], label
    staff = ship.as_("warehouse_staff", "AMS")
    res = staff.post_json(
        f"/v1/shipments/{shipment_id}/tracking", {"status": "in_transit", "occurred_at": when}, status=422
    ).json
    assert [e["pointer"] for e in res["errors"]] == ["/occurred_at"], label
    assert outbox_types(ship) == before
    assert ship.as_().get(f"/v1/shipments/{shipment_id}").json["tracking"] == []


def test_a_small_clock_skew_is_accepted(ship):
    _shipment_id, number = labelled(ship)
    ok = post(ship, {**event(number), "occurred_at": at(4)}).json
    assert ok["result"] == "accepted"


def test_carrier_event_ids_are_unique_per_tracking_number_not_per_carrier(ship):
    first_id, first_number = labelled(ship)
    second_id = ready_shipment(ship, postal_code="1011AB")
    second_number = (
        ship.as_()
        .post_json(f"/v1/shipments/{second_id}/label", {"carrier": "POSTNL", "service": "standard"})
        .json["tracking_number"]
    )
    # Carriers number events per parcel: both parcels have an event "1".
    assert post(ship, event(first_number, "1")).json["result"] == "accepted"
    assert post(ship, event(second_number, "1")).json["result"] == "accepted"
    assert post(ship, event(second_number, "1")).json["result"] == "duplicate"
    assert status_of(ship, first_id) == status_of(ship, second_id) == "in_transit"


# -- the cached lookup ---------------------------------------------------------------
def _staff_event(client: Client, shipment_id: str, number: str) -> None:
    client.as_("warehouse_staff", "AMS").post_json(
        f"/v1/shipments/{shipment_id}/tracking", {"status": "in_transit"}, status=201
    )


def _carrier_event(client: Client, shipment_id: str, number: str) -> None:
    post(client, event(number, uuid.uuid4().hex, "in_transit"), secret=SECRET)


def _carrier_scan_that_moves_nothing(client: Client, shipment_id: str, number: str) -> None:
    post(
        client,
        {**event(number, uuid.uuid4().hex, "in_transit"), "location": "Utrecht hub", "occurred_at": at(2)},
    )


def _stale_carrier_event(client: Client, shipment_id: str, number: str) -> None:
    post(client, {**event(number, uuid.uuid4().hex, "exception"), "occurred_at": at(1)})


def _cancel(client: Client, shipment_id: str, number: str) -> None:
    client.as_().post(f"/v1/shipments/{shipment_id}/cancel", status=200)


def _worker_transition(client: Client, shipment_id: str, number: str) -> None:
    """A transition outside any request, on the session factory consumers and sweepers use."""
    factory = client.registry["dbsession_factory"]
    with factory() as session, session.begin():
        current = shipments.load_for_update(session, shipment_id, None)
        lifecycle.transition(session, current, "in_transit", cause="test-worker")


def _in_transit(client: Client, shipment_id: str, number: str) -> None:
    post(client, {**event(number, uuid.uuid4().hex, "in_transit"), "occurred_at": at(1.5)})


def _nothing(client: Client, shipment_id: str, number: str) -> None:
    pass


Change = Callable[[Client, str, str], None]
#: name -> (what happened before the lookup was cached, the change under test)
CHANGES: dict[str, tuple[Change, Change]] = {
    "staff event": (_nothing, _staff_event),
    "carrier event": (_nothing, _carrier_event),
    "carrier scan that moves nothing": (_in_transit, _carrier_scan_that_moves_nothing),
    "stale carrier event": (_in_transit, _stale_carrier_event),
    "cancel": (_nothing, _cancel),
    "transition in a worker": (_nothing, _worker_transition),
}


def _lookup(client: Client, number: str) -> dict[str, Any]:
    return client.as_().get(f"/v1/tracking/{number}").json


@pytest.mark.redis
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_of_a_shipment_drops_its_cached_lookup(change, database_factory, specs, tmp_path):
    """Two replicas share Redis; the local level stays on, as in production. Whatever
    changes the lookup's answer forgets it after commit: the replica that made the
    change answers fresh at once, the other as soon as its local copy expires."""
    need_service("Redis", "127.0.0.1", 6379)
    db = database_factory(specs["shipping"], "sqlite")
    replicas = []
    for local_seconds in (30, 0):
        settings = make_settings(
            "shipping", db, tmp_path, redis_url=REDIS_URL, cache_local_seconds=local_seconds
        )
        replicas.append(Client(specs["shipping"].configure(settings).make_wsgi_app(), settings))
    writer, reader = replicas
    shipment_id, number = labelled(writer)
    prepare, make_change = CHANGES[change]
    prepare(writer, shipment_id, number)
    key = f"logistics:tracking:{number}"
    server = redis.Redis.from_url(REDIS_URL)
    try:
        before = _lookup(writer, number)
        assert server.exists(key)
        assert _lookup(reader, number) == before
        make_change(writer, shipment_id, number)
        assert not server.exists(key), f"{change}: the shared copy was not dropped"
        fresh = writer.as_().get(f"/v1/shipments/{shipment_id}").json
        expected = (fresh["status"], [t["status"] for t in fresh["tracking"]])
        for replica in (writer, reader):
            after = _lookup(replica, number)
            assert (after["status"], [e["status"] for e in after["events"]]) == expected, change
        assert expected != (before["status"], [e["status"] for e in before["events"]])
    finally:
        server.delete(key)
        for replica in replicas:
            replica.engine.dispose()

"""Webhook deliveries end to end on PostgreSQL: the outbox relay fans events out, the
asyncio dispatcher sends them to loopback receivers that verify the signatures with the
``standardwebhooks`` package, and the delivery log shows every attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from logistics_shared.bus.worker import Worker

from ..helpers.bus import wait_until
from ..helpers.shipping import event, labelled, post
from .conftest import SETTINGS, subscribe

pytestmark = pytest.mark.postgres

SHIPMENT_EVENTS = [
    "shipment.created",
    "shipment.ready",
    "shipment.label_purchased",
    "shipment.status_changed",
]


@pytest.fixture
def shipping(service_client, rabbit, namespace):
    return service_client("shipping", "postgres", broker_url=rabbit, bus_namespace=namespace, **SETTINGS)


@pytest.fixture
def relay(shipping, specs):
    runner = Worker(specs["shipping"], shipping.settings, shipping.registry, consumers=0, periodic=False)
    runner.start()
    wait_until(lambda: runner.readiness()["status"] == "ready", what="relay ready")
    yield runner
    runner.shutdown()


def log(client, endpoint_id, **query):
    path = f"/v1/shipping/webhook-endpoints/{endpoint_id}/deliveries"
    return client.as_().get(path, params=query).json["items"]


def attempts(client, endpoint_id, delivery_id):
    path = f"/v1/shipping/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}"
    return client.as_().get(path).json["attempts"]


def first_attempt(client, endpoint_id):
    deliveries = log(client, endpoint_id)
    tries = attempts(client, endpoint_id, deliveries[0]["id"]) if deliveries else []
    return tries[0] if tries else None


def test_a_shipments_lifecycle_reaches_each_endpoint_once_per_event_signed(
    shipping, relay, dispatcher, receiver
):
    everything = subscribe(shipping, receiver.url("/all"), ["shipment.*"])
    ready_only = subscribe(shipping, receiver.url("/ready"), ["shipment.ready"])
    other_warehouse = subscribe(shipping, receiver.url("/rtm"), ["*"], warehouses=["RTM"])
    for endpoint, path in ((everything, "/all"), (ready_only, "/ready"), (other_warehouse, "/rtm")):
        receiver.secrets[path] = endpoint["secret"]
    dispatcher(shipping)

    shipment_id, number = labelled(shipping)  # created, ready, label purchased
    post(shipping, event(number, "ev-1", "in_transit"))
    wait_until(lambda: len(receiver.at("/all")) >= 4, what="four events at /all")
    wait_until(lambda: len(receiver.at("/ready")) >= 1, what="shipment.ready at /ready")

    got = receiver.at("/all")
    assert sorted(r.body["type"] for r in got) == sorted(SHIPMENT_EVENTS)
    assert all(r.verified for r in got), "every request verifies with standardwebhooks"
    assert len({r.message_id for r in got}) == 4, "one webhook-id per event"
    assert all(r.body["data"]["shipment_id"] == shipment_id for r in got)
    # The allow-list: the inventory reservation behind "ready" is not part of the public payload.
    assert "reservation_id" not in next(r for r in got if r.body["type"] == "shipment.ready").body["data"]
    assert [r.body["type"] for r in receiver.at("/ready")] == ["shipment.ready"]
    # Staff of RTM subscribed to everything of RTM: an AMS shipment is not theirs.
    assert receiver.at("/rtm") == []
    # Recorded a moment after the receiver answered (the dispatcher writes outcomes in batches).
    wait_until(lambda: len(log(shipping, everything["id"], status="delivered")) == 4, what="four delivered")
    assert log(shipping, everything["id"], status="pending") == []
    assert len(receiver.at("/all")) == 4, "nothing was sent twice"


def test_a_receiver_failing_twice_gets_the_event_three_times_and_the_log_shows_three_attempts(
    shipping, relay, dispatcher, receiver
):
    endpoint = subscribe(shipping, receiver.url("/fail/2"), ["shipment.created"])
    receiver.secrets["/fail/2"] = endpoint["secret"]
    dispatcher(shipping)
    shipping.as_().post_json("/v1/shipments", _shipment(), status=201)
    wait_until(lambda: len(receiver.at("/fail/2")) >= 3, what="three requests")
    wait_until(lambda: log(shipping, endpoint["id"], status="delivered"), what="delivered")
    (delivery,) = log(shipping, endpoint["id"])
    tries = attempts(shipping, endpoint["id"], delivery["id"])
    assert [a["outcome"] for a in tries] == ["http_error", "http_error", "delivered"]
    assert [a["status_code"] for a in tries] == [500, 500, 200]
    assert tries[0]["response_body"] == "not yet"
    assert len({r.message_id for r in receiver.at("/fail/2")}) == 1, "the same webhook-id every time"
    assert all(r.verified for r in receiver.at("/fail/2"))


def test_a_hanging_receiver_is_cut_at_the_timeout_and_retried_until_failed(
    shipping, relay, dispatcher, receiver
):
    endpoint = subscribe(shipping, receiver.url("/hang"), ["shipment.created"])
    dispatcher(shipping)
    shipping.as_().post_json("/v1/shipments", _shipment(), status=201)
    wait_until(lambda: log(shipping, endpoint["id"], status="failed"), timeout=60, what="failed")
    (delivery,) = log(shipping, endpoint["id"])
    tries = attempts(shipping, endpoint["id"], delivery["id"])
    # The first try and the three retries of the schedule, each cut at the 2 s limit.
    assert [a["outcome"] for a in tries] == ["timeout"] * 4
    assert all(a["latency_ms"] < 3000 for a in tries)


def test_an_endpoint_failing_past_the_threshold_is_disabled_and_the_others_are_told(
    shipping, relay, dispatcher, receiver
):
    failing = subscribe(shipping, receiver.url("/down"), ["shipment.created"])
    watcher = subscribe(shipping, receiver.url("/ops"), ["webhook_endpoint.disabled"])
    receiver.secrets["/ops"] = watcher["secret"]
    # It has been failing for four days already (past the 72 h default).
    table = shipping.registry["logistics.platform_tables"].webhooks.endpoints
    with shipping.engine.begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == failing["id"])
            .values(failing_since=datetime.now(UTC) - timedelta(days=4))
        )
    dispatcher(shipping)
    shipping.as_().post_json("/v1/shipments", _shipment(), status=201)
    wait_until(lambda: receiver.at("/ops"), what="the disabled event")
    (told,) = receiver.at("/ops")
    assert told.verified
    assert told.body["type"] == "webhook_endpoint.disabled"
    assert told.body["data"]["endpoint_id"] == failing["id"]
    shown = shipping.as_().get(f"/v1/shipping/webhook-endpoints/{failing['id']}").json
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "failing")
    metrics = shipping.registry["logistics.webhook_metrics"]
    assert metrics.auto_disabled._value.get() == 1


def test_a_success_clears_failing_since(shipping, relay, dispatcher, receiver):
    endpoint = subscribe(shipping, receiver.url("/fail/1"), ["shipment.created"])
    dispatcher(shipping)
    shipping.as_().post_json("/v1/shipments", _shipment(), status=201)
    wait_until(lambda: log(shipping, endpoint["id"], status="delivered"), what="delivered")
    with shipping.engine.connect() as conn:
        failing = conn.execute(
            text("SELECT failing_since FROM webhook_endpoints WHERE id = :id"), {"id": endpoint["id"]}
        ).scalar()
    assert failing is None


def test_a_ping_reaches_only_that_endpoint(shipping, dispatcher, receiver):
    one = subscribe(shipping, receiver.url("/one"), ["shipment.*"])
    subscribe(shipping, receiver.url("/two"), ["*"])
    receiver.secrets["/one"] = one["secret"]
    dispatcher(shipping)
    shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{one['id']}/ping", {}, status=202)
    wait_until(lambda: receiver.at("/one"), what="the ping")
    (ping,) = receiver.at("/one")
    assert ping.verified and ping.body["type"] == "webhook_endpoint.ping"
    assert receiver.at("/two") == []


def test_after_a_rotation_both_secrets_sign_during_the_grace_period(shipping, dispatcher, receiver):
    endpoint = subscribe(shipping, receiver.url("/rot"), ["shipment.*"])
    old = endpoint["secret"]
    new = shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{endpoint['id']}/rotate-secret", {}).json
    dispatcher(shipping)
    for secret in (old, new["secret"]):
        receiver.received.clear()
        receiver.secrets["/rot"] = secret
        shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{endpoint['id']}/ping", {}, status=202)
        wait_until(lambda: receiver.at("/rot"), what="a ping")
        assert receiver.at("/rot")[0].verified, "a receiver holding either secret verifies"
        assert receiver.at("/rot")[0].signatures == 2


def test_a_redirect_is_not_followed(shipping, dispatcher, receiver):
    endpoint = subscribe(shipping, receiver.url("/redirect"), ["shipment.*"])
    dispatcher(shipping)
    shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{endpoint['id']}/ping", {}, status=202)
    wait_until(lambda: receiver.at("/redirect"), what="the ping")
    wait_until(lambda: first_attempt(shipping, endpoint["id"]), what="an attempt")
    first = first_attempt(shipping, endpoint["id"])
    assert (first["outcome"], first["status_code"]) == ("http_error", 302)
    assert "redirects are not followed" in first["error"]
    assert receiver.at("/ok") == []


def test_loopback_is_refused_by_a_dispatcher_without_the_allow_list(shipping, dispatcher, receiver):
    endpoint = subscribe(shipping, receiver.url("/ok"), ["shipment.*"])
    # The API allowed it (its settings list loopback); this dispatcher's do not.
    dispatcher(shipping, webhook_allow_networks="")
    shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{endpoint['id']}/ping", {}, status=202)
    wait_until(lambda: first_attempt(shipping, endpoint["id"]), what="an attempt")
    assert first_attempt(shipping, endpoint["id"])["outcome"] == "refused"
    assert receiver.received == []


def _shipment():
    from ..helpers.shipping import shipment_body

    return shipment_body()


def test_an_endpoint_deleted_mid_delivery_does_not_stop_the_dispatcher(shipping, dispatcher, receiver):
    doomed = subscribe(shipping, receiver.url("/hang"), ["shipment.*"])
    other = subscribe(shipping, receiver.url("/ok"), ["shipment.*"])
    running = dispatcher(shipping)
    shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{doomed['id']}/ping", {}, status=202)
    wait_until(lambda: receiver.at("/hang"), what="the request in flight")
    shipping.as_().delete(f"/v1/shipping/webhook-endpoints/{doomed['id']}", status=204)
    # Its attempt times out after the delete: nothing to record it on, and the rest goes on.
    wait_until(lambda: shipping.registry["logistics.webhook_metrics"].attempts.labels("shipping", "timeout")
               ._value.get() >= 1, what="the timeout")  # fmt: skip
    shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{other['id']}/ping", {}, status=202)
    wait_until(lambda: log(shipping, other["id"], status="delivered"), what="the next delivery recorded")
    assert running.dispatcher.readiness()["status"] == "ready"

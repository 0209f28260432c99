"""The embedded default (SQLite, memory:// bus, everything in one process as ``logistics
up`` runs it) delivers webhooks too; and a dispatcher stopped with deliveries in flight
lets them finish within the grace period or releases them for the next one."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from logistics_shared.bus.worker import Worker

from ..helpers.bus import wait_until
from ..helpers.shipping import shipment_body
from .conftest import SETTINGS, subscribe


def test_the_embedded_default_delivers_a_subscribed_event(service_client, specs, dispatcher, receiver):
    shipping = service_client("shipping", "sqlite", broker_url="memory://", **SETTINGS)
    endpoint = subscribe(shipping, receiver.url("/ok"), ["shipment.created"])
    receiver.secrets["/ok"] = endpoint["secret"]
    worker = Worker(specs["shipping"], shipping.settings, shipping.registry, consumers=0, periodic=False)
    worker.start()
    try:
        dispatcher(shipping)
        created = shipping.as_().post_json("/v1/shipments", shipment_body(), status=201).json
        wait_until(lambda: receiver.at("/ok"), what="shipment.created at the receiver")
    finally:
        worker.shutdown()
    (got,) = receiver.at("/ok")
    assert got.verified
    assert (got.body["type"], got.body["data"]["shipment_id"]) == ("shipment.created", created["id"])


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stopping_releases_what_does_not_finish_in_the_grace_period(
    service_client, dispatcher, receiver, backend
):
    shipping = service_client("shipping", backend, **{**SETTINGS, "webhook_read_timeout": "20"})
    quick = subscribe(shipping, receiver.url("/slow/quick"), ["shipment.*"])
    stuck = subscribe(shipping, receiver.url("/hang"), ["shipment.*"])
    running = dispatcher(shipping, web_graceful_timeout=1)
    for endpoint in (quick, stuck):
        shipping.as_().post_json(f"/v1/shipping/webhook-endpoints/{endpoint['id']}/ping", {}, status=202)
    wait_until(lambda: len(receiver.received) == 2, what="both requests in flight")
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 10, "the grace period bounds the shutdown"
    d = shipping.registry["logistics.platform_tables"].webhooks.deliveries
    with shipping.engine.connect() as conn:
        rows = {r.endpoint_id: r for r in conn.execute(select(d))}
    # The quick one finished inside the grace period; the hanging one went back, unclaimed.
    assert rows[quick["id"]].status == "delivered"
    hung = rows[stuck["id"]]
    assert (hung.status, hung.attempts, hung.claim, hung.claimed_until) == ("pending", 0, None, None)


def test_a_stop_before_the_loop_runs_is_not_lost(service_client):
    shipping = service_client("shipping", "sqlite", **SETTINGS)
    from logistics_shared.webhooks.dispatcher import Dispatcher

    runner = Dispatcher("shipping", shipping.settings, shipping.registry)
    runner.stop()  # a SIGTERM right at start-up
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    thread.join(5)
    alive = thread.is_alive()
    runner.stop()  # (for the failing case: end it)
    thread.join(10)
    assert not alive, "the stop before start-up was lost: the dispatcher kept running"

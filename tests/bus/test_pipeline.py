"""Outbox -> RabbitMQ -> idempotent consumers, on the machine's broker and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import text

from logistics_shared.bus.connection import connection_factory
from logistics_shared.bus.consumer import EventConsumer
from logistics_shared.bus.handlers import Handler
from logistics_shared.bus.worker import Worker

from ..helpers.bus import forget_seeded_events, publish_event, unpublished, wait_until
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import receive, seed

pytestmark = pytest.mark.postgres

FAST_RETRIES = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 3}


@pytest.fixture
def inv(service_client, rabbit, namespace):
    client = service_client(
        "inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST_RETRIES
    )
    seed(client)
    forget_seeded_events(client)
    return client


@pytest.fixture
def worker(inv, specs):
    runner = Worker(specs["inventory"], inv.settings, inv.registry)
    runner.start()
    wait_until(lambda: runner.readiness()["status"] == "ready", what="worker ready")
    yield runner
    runner.shutdown()


def outbox_ids(client) -> list[str]:
    with client.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_id FROM outbox ORDER BY id"))]


def test_every_committed_row_is_published_and_a_rollback_publishes_nothing(inv, worker, tap):
    wire = tap("inventory")
    receive(inv, "AMS", "SKU-1", 5)
    inv.as_().post_json("/v1/receipts", {"warehouse": "AMS", "sku": "NOPE", "quantity": 1}, status=422)
    inv.as_().post_json(
        "/v1/reservations",
        {"warehouse": "AMS", "reference": "r", "lines": [{"sku": "SKU-1", "quantity": 9}]},
        status=409,
    )
    inv.as_().post_json(
        "/v1/reservations", {"warehouse": "AMS", "reference": "r", "lines": [{"sku": "SKU-1", "quantity": 2}]}
    )
    wait_until(lambda: unpublished(inv) == 0, what="outbox drained")
    wire.wait_for(2)
    assert sorted(wire.ids()) == sorted(outbox_ids(inv))
    assert [m["type"] for m in wire.messages] == ["stock.received", "stock.reserved"]
    assert all(m["producer"] == "inventory" for m in wire.messages)


def test_shipment_requested_reserves_once_however_often_delivered(inv, worker, tap, rabbit, namespace):
    wire = tap("inventory")
    receive(inv, "AMS", "SKU-1", 5)
    shipment = str(uuid.uuid4())
    data = {
        "shipment_id": shipment,
        "reference": "S-1",
        "warehouse": "AMS",
        "lines": [{"sku": "SKU-1", "quantity": 3}],
    }
    event_id = publish_event(rabbit, namespace, "shipping", "shipment.requested", data)
    for _ in range(3):  # the broker redelivering, or a producer republishing
        publish_event(rabbit, namespace, "shipping", "shipment.requested", data, event_id=event_id)
    wait_until(lambda: "stock.reserved" in [m["type"] for m in wire.messages], what="stock.reserved")
    wait_until(
        lambda: (
            worker.registry["logistics.metrics"]
            .bus.duplicates.labels("inventory", "shipment_requested")
            ._value.get()
            == 3
        ),
        what="3 duplicates",
    )
    rows = inv.as_().get("/v1/reservations", {"reference": shipment}).json["items"]
    assert [(r["status"], r["lines"]) for r in rows] == [("active", [{"sku": "SKU-1", "quantity": 3}])]
    reserved = next(m for m in wire.messages if m["type"] == "stock.reserved")
    assert reserved["causation_id"] == event_id
    assert_inventory_invariants(inv.engine)


def test_shortage_answers_reservation_failed_with_lines(inv, worker, tap, rabbit, namespace):
    wire = tap("inventory")
    receive(inv, "AMS", "SKU-1", 1)
    shipment = str(uuid.uuid4())
    publish_event(
        rabbit,
        namespace,
        "shipping",
        "shipment.requested",
        {
            "shipment_id": shipment,
            "reference": "S-2",
            "warehouse": "AMS",
            "lines": [{"sku": "SKU-1", "quantity": 3}],
        },
    )
    wait_until(
        lambda: any(m["type"] == "stock.reservation_failed" for m in wire.messages), what="failure event"
    )
    failed = next(m for m in wire.messages if m["type"] == "stock.reservation_failed")
    assert failed["data"]["shortages"] == [{"sku": "SKU-1", "requested": 3, "available": 1}]
    assert failed["data"]["reference"] == shipment
    assert inv.as_().get("/v1/reservations", {"reference": shipment}).json["items"] == []
    assert_inventory_invariants(inv.engine)


def test_cancel_releases_the_shipments_reservation(inv, worker, rabbit, namespace):
    receive(inv, "AMS", "SKU-1", 5)
    shipment = str(uuid.uuid4())
    base = {"shipment_id": shipment, "reference": "S-3", "warehouse": "AMS"}
    publish_event(
        rabbit,
        namespace,
        "shipping",
        "shipment.requested",
        {**base, "lines": [{"sku": "SKU-1", "quantity": 2}]},
    )
    wait_until(
        lambda: inv.as_().get("/v1/reservations", {"reference": shipment}).json["items"], what="reserved"
    )
    publish_event(rabbit, namespace, "shipping", "shipment.cancelled", base)
    wait_until(
        lambda: (
            inv.as_().get("/v1/reservations", {"reference": shipment}).json["items"][0]["status"]
            == "released"
        ),
        what="released",
    )
    assert_inventory_invariants(inv.engine)


def _consumer(client, handlers, **over):
    from dataclasses import replace

    settings = replace(client.settings, **over) if over else client.settings
    return EventConsumer(
        service="inventory",
        settings=settings,
        session_factory=client.registry["dbsession_factory"],
        platform=client.registry["logistics.platform_tables"],
        handlers=handlers,
        metrics=client.registry["logistics.metrics"].bus,
        connect=connection_factory(settings, heartbeat=True),
    )


def _run(consumer):
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(consumer.connected.is_set, what="consumer connected")
    return stop, thread


def test_poison_message_is_dead_lettered_then_replayed_once_fixed(inv, rabbit, namespace):
    from logistics_shared.bus.dlq import DeadLetterQueue

    broken = {"on": True}
    applied = []

    def flaky(session, envelope, outbox):
        if broken["on"]:
            raise RuntimeError("carrier API down")
        applied.append(str(envelope["id"]))

    handler = Handler("flaky", producer="shipping", events=("shipment.cancelled",), func=flaky)
    consumer = _consumer(inv, (handler,))
    stop, thread = _run(consumer)
    try:
        data = {"shipment_id": str(uuid.uuid4()), "reference": "P", "warehouse": "AMS"}
        event_id = publish_event(rabbit, namespace, "shipping", "shipment.cancelled", data)
        dlq = DeadLetterQueue(inv.settings, "inventory")
        wait_until(lambda: len(dlq.peek()) == 1, timeout=20, what="dead letter")
        letter = dlq.peek()[0]
        assert letter.message_id == event_id
        assert letter.headers["x-attempts"] == 3
        assert letter.headers["x-death-reason"] == "handler_failed"
        assert "carrier API down" in letter.headers["x-error"]
        assert letter.headers["x-original-routing-key"] == "shipment.cancelled"
        metrics = inv.registry["logistics.metrics"].bus
        assert metrics.retried.labels("inventory", "flaky")._value.get() == 2
        broken["on"] = False
        assert dlq.replay() == 1
        wait_until(lambda: applied == [event_id], what="replayed message applied")
        assert dlq.peek() == []
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x00not json", "undecodable"),
        (b"[1, 2]", "undecodable"),
        (b'{"id": "x"}', "undecodable"),
        (None, "unknown_event"),
    ],
)
def test_bad_messages_go_straight_to_the_dlq(inv, rabbit, namespace, body, reason):
    from logistics_shared.bus.dlq import DeadLetterQueue

    calls = []
    handler = Handler(
        "any",
        producer="shipping",
        events=("shipment.cancelled", "shipment.lost"),
        func=lambda *a: calls.append(a),
    )
    consumer = _consumer(inv, (handler,))
    stop, thread = _run(consumer)
    try:
        if body is None:
            # A well-formed envelope of a type nobody registered a schema for.
            publish_event(rabbit, namespace, "shipping", "shipment.lost", {"x": 1})
        else:
            publish_event(rabbit, namespace, "shipping", "shipment.cancelled", {}, body=body)
        dlq = DeadLetterQueue(inv.settings, "inventory")
        wait_until(lambda: len(dlq.peek()) == 1, timeout=10, what="dead letter")
        letter = dlq.peek()[0]
        assert letter.headers["x-death-reason"] == reason
        assert letter.headers["x-attempts"] == 1
        assert calls == []
        assert inv.registry["logistics.metrics"].bus.retried.labels("inventory", "any")._value.get() == 0
    finally:
        stop.set()
        thread.join(10)


def test_two_consumer_replicas_share_the_queue_without_duplicate_effects(inv, rabbit, namespace):
    seen = Counter()
    lock = threading.Lock()

    def record(session, envelope, outbox):
        with lock:
            seen[str(envelope["id"])] += 1

    handler = Handler("shared", producer="shipping", events=("shipment.cancelled",), func=record)
    replicas = [_consumer(inv, (handler,), bus_prefetch=5) for _ in range(2)]
    running = [_run(c) for c in replicas]
    try:
        ids = [
            publish_event(
                rabbit,
                namespace,
                "shipping",
                "shipment.cancelled",
                {"shipment_id": str(uuid.uuid4()), "reference": f"R{i}", "warehouse": "AMS"},
            )
            for i in range(100)
        ]
        # Redeliver a third of them: duplicates must have no effect.
        for event_id in ids[::3]:
            publish_event(
                rabbit,
                namespace,
                "shipping",
                "shipment.cancelled",
                {"shipment_id": str(uuid.uuid4()), "reference": "dup", "warehouse": "AMS"},
                event_id=event_id,
            )
        wait_until(lambda: sum(seen.values()) == 100, what="100 effects")
        wait_until(
            lambda: (
                inv.registry["logistics.metrics"].bus.duplicates.labels("inventory", "shared")._value.get()
                == len(ids[::3])
            ),
            what="duplicates acked",
        )
        assert set(seen) == set(ids)
        assert max(seen.values()) == 1
        with inv.engine.connect() as conn:
            assert (
                conn.execute(text("SELECT COUNT(*) FROM inbox WHERE handler = 'shared'")).scalar_one() == 100
            )
    finally:
        for stop, thread in running:
            stop.set()
            thread.join(10)

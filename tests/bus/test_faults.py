"""Faults between our code and the broker: partitions, stalls, crashes, replicas.

The machine's RabbitMQ is never touched: a TCP proxy in front of it is cut or
stalled, and crashing workers are our own subprocesses.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import text

from logistics_shared.bus.connection import broker_connection, connection_factory
from logistics_shared.bus.publisher import ConfirmTimeout, make_publisher
from logistics_shared.bus.relay import OutboxRelay
from logistics_shared.bus.worker import Worker
from logistics_shared.outbox import Outbox

from ..helpers.bus import forget_seeded_events, publish_event, unpublished, wait_until
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import seed
from .workers import queue_depth, queue_exists, start_worker, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.fault]

FAST = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 2}


def outbox_ids(client) -> set[str]:
    with client.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT event_id FROM outbox"))}


def test_burst_while_the_broker_is_unreachable_loses_nothing(service_client, proxy, namespace, tap):
    client = service_client("inventory", "postgres", broker_url=proxy.url, bus_namespace=namespace, **FAST)
    seed(client)
    forget_seeded_events(client)
    wire = tap("inventory")  # on the real broker, not through the proxy
    worker = Worker(client.registry["logistics.service"], client.settings, client.registry)
    worker.start()
    try:
        wait_until(lambda: worker.readiness()["status"] == "ready", what="worker ready")
        proxy.cut()
        wait_until(lambda: worker.readiness()["status"] == "unavailable", what="worker notices the cut")
        staff = client.as_("warehouse_staff", "AMS")
        statuses = [
            staff.post_json(
                "/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1}, expect_errors=True
            ).status_int
            for _ in range(1000)
        ]
        assert set(statuses) == {201}, "the API keeps answering: it only writes outbox rows"
        assert client.anonymous.get("/readyz").status_int == 200, "web readiness ignores the broker"
        assert unpublished(client) == 1000
        proxy.heal()
        wait_until(lambda: unpublished(client) == 0, timeout=60, what="backlog drained")
        wire.wait_for(1000, timeout=30)
        ids = wire.ids()
        assert len(set(ids)) == 1000
        assert set(ids) == outbox_ids(client)
        # At-least-once on the wire is allowed; here nothing was in flight, so none repeat.
        assert len(ids) == 1000
        assert_inventory_invariants(client.engine)
    finally:
        worker.shutdown()


def test_a_confirm_that_never_comes_fails_the_batch_within_the_timeout(service_client, proxy, namespace):
    client = service_client(
        "inventory", "postgres", broker_url=proxy.url, bus_namespace=namespace, bus_confirm_timeout=1.5
    )
    seed(client)
    forget_seeded_events(client)
    settings = client.settings
    relay = OutboxRelay(
        service="inventory",
        settings=settings,
        session_factory=client.registry["dbsession_factory"],
        outbox=client.registry["logistics.platform_tables"].outbox,
        metrics=client.registry["logistics.metrics"].bus,
        connect=connection_factory(settings, heartbeat=False),
    )
    client.as_().post_json("/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1})
    from logistics_shared.bus.names import Names
    from logistics_shared.bus.topology import declare_producer

    def stalled_batch() -> None:
        # broker_connection drops (not closes) the connection after the failure.
        with broker_connection(connection_factory(settings, heartbeat=False)) as conn:
            conn.ensure_connection(max_retries=1)
            declare_producer(conn.default_channel, Names(namespace), "inventory")
            publisher = make_publisher(conn, settings.bus_confirm_timeout)
            proxy.stall()
            relay.relay_once(publisher)

    started = time.monotonic()
    with pytest.raises(ConfirmTimeout):
        stalled_batch()
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 4, elapsed
    assert unpublished(client) == 1, "an unconfirmed row stays unsent, to be retried"
    failures = client.registry["logistics.metrics"].bus.publish_failures
    assert failures.labels("inventory", "confirm_timeout")._value.get() == 1


def test_two_relays_neither_skip_nor_double_send(service_client, rabbit, namespace, tap):
    client = service_client(
        "inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, outbox_batch_size=50
    )
    wire = tap("inventory")
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    stop = threading.Event()
    relays = [
        OutboxRelay(
            service="inventory",
            settings=client.settings,
            session_factory=factory,
            outbox=table,
            metrics=client.registry["logistics.metrics"].bus,
            connect=connection_factory(client.settings, heartbeat=False),
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in relays]
    for t in threads:
        t.start()
    try:
        # Writers keep committing while both relays drain.
        def write(n):
            for _ in range(n):
                with factory() as session, session.begin():
                    outbox = Outbox(session, table, producer="inventory")
                    for _ in range(10):
                        outbox.emit(
                            "stock.low",
                            {
                                "sku": "SKU-1",
                                "warehouse": "AMS",
                                "on_hand": 1,
                                "reserved": 0,
                                "available": 1,
                                "reorder_point": 3,
                            },
                        )

        writers = [threading.Thread(target=write, args=(50,)) for _ in range(4)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        wait_until(lambda: unpublished(client) == 0, timeout=60, what="all published")
        wire.wait_for(2000, timeout=30)
        time.sleep(0.5)
        ids = wire.ids()
        assert len(ids) == 2000, f"{len(ids) - len(set(ids))} double sends"
        assert set(ids) == outbox_ids(client)
        published = client.registry["logistics.metrics"].bus.published.labels("inventory")._value.get()
        assert published == 2000
    finally:
        stop.set()
        for t in threads:
            t.join(10)


@pytest.mark.parametrize("crash_point", ["before_commit", "after_commit"])
def test_a_worker_killed_mid_message_applies_it_exactly_once(
    service_client, rabbit, namespace, crash_point, tmp_path
):
    client = service_client("inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    seed(client)
    forget_seeded_events(client)
    client.as_().post_json("/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 5})
    env = worker_env("inventory", client, rabbit, namespace)

    def start(extra):
        return start_worker("inventory", {**env, **extra}, tmp_path)

    def declared() -> bool:
        assert first.poll() is None or first.returncode == 70, first_log.read_text()[-2000:]
        return queue_exists(f"{namespace}.inventory.shipment_requested")

    # Declare the queues first so the event is not unroutable.
    first, first_log = start({"LOGISTICS_TEST_CRASH_POINT": crash_point})
    shipment = str(uuid.uuid4())
    try:
        wait_until(declared, timeout=60, what="queue declared")
        publish_event(
            rabbit,
            namespace,
            "shipping",
            "shipment.requested",
            {
                "shipment_id": shipment,
                "reference": "K",
                "warehouse": "AMS",
                "lines": [{"sku": "SKU-1", "quantity": 2}],
            },
        )
        assert first.wait(timeout=30) == 70, "the crash hook fired"
    finally:
        if first.poll() is None:
            first.kill()
    committed = _inbox_rows(client)
    assert committed == (1 if crash_point == "after_commit" else 0)
    second, second_log = start({})
    try:
        queue = f"{namespace}.inventory.shipment_requested"
        # The redelivered message must be handled and acked, not merely already applied.
        wait_until(
            lambda: (
                _inbox_rows(client) == 1 and _reservations(client, shipment) == 1 and queue_depth(queue) == 0
            ),
            what="redelivered and acked",
        )
        time.sleep(1.0)  # room for a wrong second effect to show up
        assert _reservations(client, shipment) == 1
        assert _inbox_rows(client) == 1
    finally:
        second.terminate()
        assert second.wait(timeout=30) == 0, f"SIGTERM is a graceful stop: {second_log.read_text()[-2000:]}"
    assert_inventory_invariants(client.engine)


def _inbox_rows(client) -> int:
    with client.engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM inbox")).scalar_one()


def _reservations(client, reference: str) -> int:
    with client.engine.connect() as conn:
        return conn.execute(
            text("SELECT COUNT(*) FROM reservations WHERE reference = :r"), {"r": reference}
        ).scalar_one()

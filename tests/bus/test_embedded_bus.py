"""The same relay, inbox and handler code on the embedded ``memory://`` bus."""

from __future__ import annotations

import threading
import uuid

import orjson
from kombu import Connection

from logistics_shared.bus.connection import connection_factory
from logistics_shared.bus.consumer import EventConsumer
from logistics_shared.bus.dlq import DeadLetterQueue
from logistics_shared.bus.handlers import Handler
from logistics_shared.bus.names import Names
from logistics_shared.bus.topology import declare_producer, producer_exchange
from logistics_shared.bus.worker import Worker
from logistics_shared.events import new_envelope

from ..helpers.bus import wait_until
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import receive, seed


def _publish(ns: str, type: str, data: dict, body: bytes | None = None) -> str:
    envelope = new_envelope(type, data, producer="shipping").to_dict()
    with Connection("memory://") as conn:
        declare_producer(conn.default_channel, Names(ns), "shipping")
        conn.Producer().publish(
            body if body is not None else orjson.dumps(envelope),
            exchange=producer_exchange(Names(ns), "shipping"),
            routing_key=type,
            content_type="application/json",
            message_id=envelope["id"],
        )
    return envelope["id"]


def test_events_flow_in_process_on_memory(service_client, specs):
    ns = f"m{uuid.uuid4().hex[:8]}"
    client = service_client("inventory", "sqlite", broker_url="memory://", bus_namespace=ns)
    seed(client)
    worker = Worker(specs["inventory"], client.settings, client.registry)
    worker.start()
    try:
        wait_until(lambda: worker.readiness()["status"] == "ready", what="ready")
        receive(client, "AMS", "SKU-1", 4)
        shipment = str(uuid.uuid4())
        _publish(
            ns,
            "shipment.requested",
            {
                "shipment_id": shipment,
                "reference": "E",
                "warehouse": "AMS",
                "lines": [{"sku": "SKU-1", "quantity": 3}],
            },
        )
        wait_until(
            lambda: client.as_().get("/v1/reservations", {"reference": shipment}).json["items"],
            what="reservation made by the in-process consumer",
        )
        from sqlalchemy import text

        def unpublished() -> int:
            with client.engine.connect() as conn:
                return conn.execute(
                    text("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                ).scalar_one()

        wait_until(lambda: unpublished() == 0, what="outbox relayed on memory://")
        assert_inventory_invariants(client.engine)
    finally:
        worker.shutdown()


def test_memory_bus_retries_at_once_and_dead_letters(service_client):
    """memory:// has no TTL queues: retries come back immediately (documented), then the DLQ."""
    ns = f"m{uuid.uuid4().hex[:8]}"
    client = service_client(
        "inventory", "sqlite", broker_url="memory://", bus_namespace=ns, bus_max_attempts=3
    )
    calls = []

    def failing(session, envelope, outbox):
        calls.append(1)
        raise RuntimeError("always")

    consumer = EventConsumer(
        service="inventory",
        settings=client.settings,
        session_factory=client.registry["dbsession_factory"],
        platform=client.registry["logistics.platform_tables"],
        handlers=(Handler("fails", producer="shipping", events=("shipment.cancelled",), func=failing),),
        metrics=client.registry["logistics.metrics"].bus,
        connect=connection_factory(client.settings, heartbeat=True),
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(consumer.connected.is_set, what="connected")
        _publish(
            ns, "shipment.cancelled", {"shipment_id": str(uuid.uuid4()), "reference": "x", "warehouse": "AMS"}
        )
        _publish(ns, "shipment.cancelled", {}, body=b"not json")
        dlq = DeadLetterQueue(client.settings, "inventory")
        wait_until(lambda: len(dlq.peek()) == 2, what="two dead letters")
        reasons = sorted(letter.headers["x-death-reason"] for letter in dlq.peek())
        assert reasons == ["handler_failed", "undecodable"]
        assert len(calls) == 3
        assert dlq.purge() == 2
        assert dlq.peek() == []
    finally:
        stop.set()
        thread.join(10)


def test_dlq_commands(tmp_path):
    from click.testing import CliRunner

    from logistics_shared.cli import main

    ns = f"m{uuid.uuid4().hex[:8]}"
    env = {
        "LOGISTICS_BROKER_URL": "memory://",
        "LOGISTICS_BUS_NAMESPACE": ns,
        "LOGISTICS_VAR_DIR": str(tmp_path),
    }
    with Connection("memory://") as conn:
        from logistics_shared.bus.topology import dlq

        queue = dlq(Names(ns), "inventory")(conn.default_channel)
        queue.declare()
        for n in range(2):
            conn.Producer().publish(
                b'{"id": "x"}',
                exchange="",
                routing_key=queue.name,
                message_id=f"msg-{n}",
                headers={
                    "x-handler": "h",
                    "x-death-reason": "handler_failed",
                    "x-attempts": 5,
                    "x-error": "RuntimeError: boom",
                    "x-original-queue": f"{ns}.inventory.h",
                },
            )
    runner = CliRunner(env=env)
    listed = runner.invoke(main, ["dlq", "list", "inventory"])
    assert listed.exit_code == 0, listed.output
    assert "msg-0" in listed.output and "msg-1" in listed.output
    shown = runner.invoke(main, ["dlq", "show", "inventory", "msg-1"])
    assert '"x-error": "RuntimeError: boom"' in shown.output
    assert runner.invoke(main, ["dlq", "show", "inventory", "nope"]).exit_code == 1
    replayed = runner.invoke(main, ["dlq", "replay", "inventory", "--id", "msg-0"])
    assert "replayed 1 message(s)" in replayed.output
    assert runner.invoke(main, ["dlq", "purge", "inventory"], input="n\n").exit_code == 1  # asks first
    purged = runner.invoke(main, ["dlq", "purge", "inventory", "--yes"])
    assert "purged 1 message(s)" in purged.output
    with Connection("memory://") as conn:
        back = conn.SimpleQueue(f"{ns}.inventory.h").get(timeout=1)
        assert back.headers["x-attempts"] == 0
        assert back.properties["message_id"] == "msg-0"

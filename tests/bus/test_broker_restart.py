"""The bus survives a broker restart: on a private RabbitMQ node the test may stop.

The machine's broker is never touched: :class:`PrivateBroker` runs a node of
the test's own (own name, ports and data under ``tmp_path``). While it is
down the API keeps answering (it only writes outbox rows); once it is back
the relay and the consumer reconnect by themselves, every row is published
and every event is applied exactly once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from kombu import Connection, Queue
from sqlalchemy import text

from logistics_shared.bus.names import Names
from logistics_shared.bus.topology import declare_producer, producer_exchange
from logistics_shared.bus.worker import Worker

from ..helpers.bus import publish_event, wait_until
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import seed
from ..services import need_postgres
from .private_broker import PrivateBroker, need_rabbitmq_server

pytestmark = [pytest.mark.postgres, pytest.mark.fault]

FAST_RETRIES = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 3}
WRITES_WHILE_DOWN = 200


@pytest.fixture
def private_broker(tmp_path: Any) -> Iterator[PrivateBroker]:
    """A running private node, stopped at teardown whatever happened."""
    need_postgres()  # skip before spending seconds on a node the test cannot use
    broker = PrivateBroker(tmp_path / "rabbitmq", scripts=need_rabbitmq_server())
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


class DurableTap:
    """A raw consumer on a producer's exchange through a *durable* queue.

    The queue outlives the broker restart and keeps what is published while
    the tap is disconnected; the thread reconnects by itself. Every delivery
    is recorded, so at-least-once duplicates on the wire stay visible.
    """

    def __init__(self, url: str, ns: str, producer: str) -> None:
        self.url = url
        self.names = Names(ns)
        self.producer = producer
        self.queue = Queue(
            f"{ns}.tap.{producer}",
            exchange=producer_exchange(self.names, producer),
            routing_key="#",
            durable=True,
            auto_delete=False,
        )
        self.messages: list[dict[str, Any]] = []
        self.redelivered = 0
        self.sessions = 0
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="durable-tap", daemon=True)
        self.thread.start()
        assert self.connected.wait(15), "the tap could not connect"

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with Connection(self.url, connect_timeout=2) as conn:
                    conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2)
                    declare_producer(conn.default_channel, self.names, self.producer)
                    with conn.Consumer([self.queue], on_message=self._on, accept=None):
                        self.sessions += 1
                        self.connected.set()
                        while not self.stop.is_set():
                            with contextlib.suppress(TimeoutError):
                                conn.drain_events(timeout=0.2)
            except Exception:  # the broker went away: retry until stopped
                self.connected.clear()
                self.stop.wait(0.2)
        self.connected.clear()

    def _on(self, message: Any) -> None:
        with self.lock:
            self.messages.append(orjson.loads(message.body))
            self.redelivered += bool(message.delivery_info.get("redelivered"))
        message.ack()

    def ids(self) -> list[str]:
        with self.lock:
            return [m["id"] for m in self.messages]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def _scalar(engine: Any, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def _outbox_ids(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_id FROM outbox ORDER BY id"))]


def _unpublished(engine: Any) -> int:
    return _scalar(engine, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")


def _reservations(client: Any, reference: str) -> list[dict[str, Any]]:
    return client.as_().get("/v1/reservations", {"reference": reference}).json["items"]


def _request_shipment(broker: PrivateBroker, ns: str, quantity: int) -> tuple[str, str]:
    shipment = str(uuid.uuid4())
    event_id = publish_event(
        broker.url,
        ns,
        "shipping",
        "shipment.requested",
        {
            "shipment_id": shipment,
            "reference": f"S-{shipment[:8]}",
            "warehouse": "AMS",
            "lines": [{"sku": "SKU-1", "quantity": quantity}],
        },
    )
    return shipment, event_id


def test_bus_survives_a_broker_restart(private_broker, service_client, specs, record_property):
    broker = private_broker
    ns = f"t{uuid.uuid4().hex[:10]}"
    timings: dict[str, float] = {"broker_first_start": broker.startup_seconds}
    client = service_client(
        "inventory",
        "postgres",
        broker_url=broker.url,
        bus_namespace=ns,
        outbox_batch_size=50,  # several batches to replay after the restart
        **FAST_RETRIES,
    )
    engine = client.engine
    tap = DurableTap(broker.url, ns, "inventory")
    worker = Worker(specs["inventory"], client.settings, client.registry)
    worker.start()
    try:
        # -- 1. the bus works: API events reach the wire, a request is consumed ----------
        wait_until(lambda: worker.readiness()["status"] == "ready", timeout=30, what="worker ready")
        seed(client)
        admin = client.as_()
        admin.post_json("/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 10})
        admin.post_json("/v1/receipts", {"warehouse": "RTM", "sku": "SKU-2", "quantity": 4})
        first, first_event = _request_shipment(broker, ns, 2)
        wait_until(lambda: _reservations(client, first), timeout=30, what="first shipment reserved")
        wait_until(lambda: _unpublished(engine) == 0, timeout=30, what="outbox drained before the restart")
        before = _outbox_ids(engine)
        wait_until(lambda: set(tap.ids()) >= set(before), timeout=30, what="tap saw the first events")
        assert "stock.reserved" in [m["type"] for m in tap.messages]

        # -- 2. the broker goes down; the API keeps answering -------------------------------
        started = time.monotonic()
        broker.stop()
        timings["broker_stop"] = time.monotonic() - started
        assert not broker.running
        down_at = time.monotonic()
        statuses = []
        for i in range(WRITES_WHILE_DOWN):
            res = admin.post_json(
                "/v1/receipts",
                {
                    "warehouse": ("AMS", "RTM")[i % 2],
                    "sku": ("SKU-1", "SKU-2")[i // 2 % 2],
                    "quantity": 1 + i % 3,
                },
                expect_errors=True,
            )
            statuses.append(res.status_int)
        timings["writes_while_down"] = time.monotonic() - down_at
        assert [s for s in statuses if not 200 <= s < 300] == [], "the API failed while the broker was down"
        wait_until(
            lambda: worker.readiness()["relay"] == "disconnected",
            timeout=20,
            what="the relay to notice the broker is gone",
        )
        report = worker.readiness()
        assert report["status"] == "unavailable", report
        assert report["consumers"] == "0/1 connected", report
        assert report["database"] == "ok", report
        backlog = _unpublished(engine)
        assert backlog >= WRITES_WHILE_DOWN, backlog

        # -- 3. the broker is back: everything reconnects and catches up --------------------
        started = time.monotonic()
        broker.start()
        back_at = time.monotonic()
        timings["broker_restart_start"] = back_at - started
        timings["broker_downtime"] = back_at - down_at
        wait_until(lambda: worker.readiness()["status"] == "ready", timeout=60, what="worker ready again")
        timings["worker_reconnect_after_broker_up"] = time.monotonic() - back_at
        second, second_event = _request_shipment(broker, ns, 3)
        wait_until(lambda: _unpublished(engine) == 0, timeout=60, what="outbox drained after the restart")
        timings["outbox_drained_after_broker_up"] = time.monotonic() - back_at
        wait_until(lambda: _reservations(client, second), timeout=30, what="second shipment reserved")
        wait_until(
            lambda: "stock.reserved" in [r[0] for r in _reserved_for(engine, second_event)],
            timeout=30,
            what="the second reservation's event",
        )
        wait_until(lambda: _unpublished(engine) == 0, timeout=30, what="outbox drained")
        rows = _outbox_ids(engine)
        wait_until(lambda: set(tap.ids()) >= set(rows), timeout=30, what="tap saw every outbox row")
        time.sleep(1.0)  # let any late duplicate arrive before counting
        timings["total_since_broker_up"] = time.monotonic() - back_at

        # Every row published, every event on the wire, effects exactly once.
        seen = Counter(tap.ids())
        duplicates = {event_id: n for event_id, n in seen.items() if n > 1}
        assert len(rows) == len(set(rows))
        assert set(seen) == set(rows), {
            "missing": sorted(set(rows) - set(seen))[:5],
            "unknown": sorted(set(seen) - set(rows))[:5],
        }
        assert len(seen) == len(rows)
        assert tap.sessions >= 2, "the tap never reconnected: it cannot have seen the replay"
        assert _scalar(engine, "SELECT COUNT(*) FROM outbox WHERE last_error LIKE 'unroutable%'") == 0
        for shipment, event_id in ((first, first_event), (second, second_event)):
            assert len(_reservations(client, shipment)) == 1
            assert _scalar(engine, "SELECT COUNT(*) FROM inbox WHERE event_id = :e", e=event_id) == 1
            assert [r[0] for r in _reserved_for(engine, event_id)] == ["stock.reserved"]
        assert_inventory_invariants(engine)

        summary = {
            "outbox_rows": len(rows),
            "backlog_while_down": backlog,
            "wire_deliveries": sum(seen.values()),
            "wire_duplicates": sum(n - 1 for n in duplicates.values()),
            "redelivered_flag": tap.redelivered,
            "tap_sessions": tap.sessions,
            "nacked_or_retried_rows": _scalar(engine, "SELECT COUNT(*) FROM outbox WHERE attempts > 0"),
            **{k: round(v, 2) for k, v in timings.items()},
        }
        record_property("broker_restart", summary)
        print(f"\nbroker restart: {summary}")
    finally:
        worker.shutdown()
        tap.close()


def _reserved_for(engine: Any, causation_id: str) -> list[tuple[str]]:
    """Event types the inventory emitted in answer to one incoming event."""
    with engine.connect() as conn:
        payloads = [r[0] for r in conn.execute(text("SELECT payload FROM outbox ORDER BY id"))]
    return [(p["type"],) for p in map(orjson.loads, payloads) if p.get("causation_id") == causation_id]

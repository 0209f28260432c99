"""logistics_bus_queue_messages / _consumers: a passive declare of every queue the worker
owns, against the machine's RabbitMQ (a namespace of its own, deleted after)."""

from __future__ import annotations

import threading
import uuid

import pytest
from kombu import Connection

from logistics_shared.bus.handlers import Handler
from logistics_shared.bus.names import Names
from logistics_shared.bus.queue_gauges import QueueGauges, owned_queues
from logistics_shared.bus.topology import declare_consumer
from logistics_shared.metrics import ServiceMetrics

from ..helpers.metrics import sample, scrape_registry
from ..services import AMQP_URL, need_service

pytestmark = pytest.mark.rabbitmq


def _gauges(metrics: ServiceMetrics, queues: list[tuple[str, str]], url: str) -> QueueGauges:
    return QueueGauges(
        service="support", queues=queues, metrics=metrics.bus, connect=lambda: Connection(url), interval=0.1
    )


def test_depth_and_consumers_of_each_owned_queue_and_dropped_when_the_broker_is_gone():
    need_service("RabbitMQ", "127.0.0.1", 5672)
    names = Names(f"t{uuid.uuid4().hex[:8]}")
    handler = Handler("on_thing", "support", ("thing.happened",), lambda *a: None)
    queues = owned_queues(names, "support", [handler], (1.0,))
    assert [kind for _, kind in queues] == ["consume", "retry", "dead", "unrouted"]
    metrics = ServiceMetrics("support")
    with Connection(AMQP_URL) as conn:
        channel = conn.channel()
        declare_consumer(channel, names, "support", [handler], (1.0,), with_delay_queues=True)
        try:
            producer = conn.Producer(channel)
            for _ in range(3):
                producer.publish(b"{}", exchange="", routing_key=names.queue("support", "on_thing"))
            # Someone (a `logistics dlq` session, say) consuming the DLQ.
            reader = conn.channel()
            reader.basic_consume(queue=names.dlq("support"), callback=lambda m: None)
            stop = threading.Event()
            stop.set()  # measure once, then return
            _gauges(metrics, queues, AMQP_URL).run(stop)
            text = scrape_registry(metrics.registry)

            def value(name: str, kind: str) -> float | None:
                return sample(text, name, service="support", kind=kind)

            assert value("logistics_bus_queue_messages", "consume") == 3
            assert value("logistics_bus_queue_consumers", "consume") == 0
            for kind in ("retry", "dead", "unrouted"):
                assert value("logistics_bus_queue_messages", kind) == 0, kind
            assert value("logistics_bus_queue_consumers", "dead") == 1
            reader.close()

            # The broker unreachable: no frozen depth, the series are gone, run() returns.
            _gauges(metrics, queues, "amqp://guest:guest@127.0.0.1:9//").run(stop)
            assert "logistics_bus_queue_messages{" not in scrape_registry(metrics.registry)
        finally:
            for queue, _ in queues:
                channel.queue_delete(queue)
            for exchange in (names.exchange("support"), names.unrouted_exchange("support")):
                channel.exchange_delete(exchange)

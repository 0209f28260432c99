"""Queue counts from the RabbitMQ management API, and the unrouted policy a worker applies.

The machine's RabbitMQ has no management plugin, and tests never enable plugins on it: a
private node of this module's own (tests/bus/private_broker.py: own node name, ports,
data and enabled-plugins file) runs with ``rabbitmq_management`` on a loopback port, its
statistics collected every 0.5 s. Each test works on a vhost of its own (``h4_...``).

(a) N messages published, M fetched and not acked: ready = N - M, unacknowledged = M, from
    ``GET /api/queues/<vhost>/<name>``; back to N ready once the channel closes;
(b) an API that refuses connections or never answers: no series, the error counted, and a
    measurement bounded by the timeout;
(c) a worker started with LOGISTICS_RABBITMQ_MANAGEMENT_URL applies the unrouted policy (read
    back through the API and with rabbitmqctl), exports the configured bound as
    ``logistics_bus_queue_max_length`` and its queues' counts, while its consumers run.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from kombu import Connection, Exchange, Producer, Queue
from prometheus_client import CollectorRegistry

from logistics_shared.bus.names import Names
from logistics_shared.bus.policy import PolicyError, queue_http, read_http
from logistics_shared.bus.queue_gauges import ManagementQueueGauges, QueueStatsMetrics
from logistics_shared.bus.worker import Worker

from ..helpers.bus import wait_until
from ..helpers.metrics import sample, scrape_app, scrape_registry
from .private_broker import BrokerError, PrivateBroker, _port_is_free, need_rabbitmq_server

pytestmark = [pytest.mark.rabbitmq]


def ports(count: int) -> list[int]:
    """Free loopback ports in 27000-27999 (this suite's range for private listeners)."""
    chosen: list[int] = []
    for port in random.sample(range(27000, 28000), 1000):
        if _port_is_free(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise BrokerError(f"no {count} free ports in 27000-27999")


class ManagementBroker(PrivateBroker):
    """A private node with the management plugin on 127.0.0.1:<management_port>."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, startup_timeout=120.0)
        self.port, self.dist_port, self.management_port = ports(3)
        (self.root / "enabled_plugins").write_text("[rabbitmq_management].\n")
        self._write_config()

    def _write_config(self) -> None:
        super()._write_config()
        if hasattr(self, "management_port"):
            with self.config_file.open("a") as config:
                config.write(
                    f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
                    # Queue counts every 0.5 s instead of 5 s: the test polls them.
                    "collect_statistics_interval = 500\n"
                )

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def amqp_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def add_vhost(self) -> str:
        vhost = f"h4_{uuid.uuid4().hex[:10]}"
        for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")):
            result = self.ctl(*args)
            assert result.returncode == 0, f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}"
        return vhost


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagementBroker]:
    need_rabbitmq_server()
    node = ManagementBroker(tmp_path_factory.mktemp("management-broker"))
    try:
        node.start()

        # The AMQP listener comes up before the management listener has finished booting.
        def answers() -> bool:
            try:
                read_overview(node)
            except PolicyError as exc:
                return exc.status == 404  # the API answers: no such policy
            return True

        wait_until(answers, timeout=60, what=f"the management API on :{node.management_port}")
        yield node
    except BrokerError as exc:
        pytest.fail(f"the private broker with the management plugin did not start: {exc}", pytrace=False)
    finally:
        node.close()


def read_overview(node: ManagementBroker) -> None:
    """Raises PolicyError until the management listener answers (any vhost's policies)."""
    read_http("/", "none", node.management_url, timeout=2)


@pytest.fixture
def vhost(broker: ManagementBroker) -> Iterator[str]:
    name = broker.add_vhost()
    yield name
    broker.ctl("delete_vhost", name)


def counts(registry: CollectorRegistry, queue: str) -> tuple[float | None, float | None]:
    text = scrape_registry(registry)
    return (
        sample(text, "logistics_bus_queue_messages_ready", queue=queue),
        sample(text, "logistics_bus_queue_messages_unacknowledged", queue=queue),
    )


def test_ready_and_unacknowledged_counts(broker: ManagementBroker, vhost: str) -> None:
    published, held = 5, 2
    queue = "h4.inventory.shipment-events"
    never_declared = "h4.inventory.not-declared"
    registry = CollectorRegistry()
    gauges = ManagementQueueGauges(
        service="inventory",
        queues=[(queue, "consume"), (never_declared, "consume")],
        metrics=QueueStatsMetrics(registry),
        management_url=broker.management_url,
        vhost=vhost,
        interval=0.2,
    )
    with Connection(broker.amqp_url(vhost), transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        exchange = Exchange("h4.shipping", type="topic", durable=True)
        Queue(queue, exchange, routing_key="#", durable=True)(channel).declare()
        producer = Producer(channel, exchange=exchange)
        for number in range(published):
            producer.publish({"n": number}, routing_key="shipment.requested", serializer="json")
        consumer = conn.channel()
        fetched = [consumer.basic_get(queue, no_ack=False) for _ in range(held)]
        assert all(message is not None for message in fetched)

        def measured() -> tuple[float | None, float | None]:
            gauges.measure()
            return counts(registry, queue)

        wanted = (float(published - held), float(held))
        try:
            wait_until(lambda: measured() == wanted, timeout=30, what=f"ready, unacknowledged == {wanted}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; measured {measured()}") from None
        assert counts(registry, never_declared) == (None, None), "a queue the broker lacks has no series"

        consumer.close()  # the unacknowledged deliveries go back to the queue
        wanted = (float(published), 0.0)
        wait_until(lambda: measured() == wanted, timeout=30, what=f"ready, unacknowledged == {wanted}")
        assert queue_http(vhost, queue, broker.management_url)["messages"] == published


class _Silent:
    """A listener that accepts connections and never answers (a hung management API)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("api", ["refused", "hung"])
def test_an_unreachable_api_leaves_no_series_and_counts_the_error(api: str) -> None:
    silent = _Silent() if api == "hung" else None
    port = silent.port if silent is not None else closed_port()
    registry = CollectorRegistry()
    metrics = QueueStatsMetrics(registry)
    queue = "h4.inventory.shipment-events"
    # As if an earlier measurement had succeeded: the series must go, not freeze.
    metrics.ready.labels("inventory", queue, "consume").set(7)
    metrics.unacknowledged.labels("inventory", queue, "consume").set(1)
    gauges = ManagementQueueGauges(
        service="inventory",
        queues=[(queue, "consume")],
        metrics=metrics,
        management_url=f"http://guest:secret@127.0.0.1:{port}",
        vhost="/",
        interval=0.1,
        timeout=0.3,
    )
    stop = threading.Event()
    thread = threading.Thread(target=gauges.run, args=(stop,), daemon=True)
    started = time.monotonic()
    try:
        thread.start()

        def errors() -> float:
            return (
                sample(
                    scrape_registry(registry), "logistics_bus_management_errors_total", service="inventory"
                )
                or 0
            )

        wait_until(lambda: errors() >= 2, timeout=10, what="two failed reads counted")
        assert counts(registry, queue) == (None, None), "no series while the API does not answer"
        assert time.monotonic() - started < 5, "each read gave up after its 0.3 s timeout"
        with pytest.raises(PolicyError) as raised:
            gauges.measure()
        assert "secret" not in str(raised.value)
    finally:
        stop.set()
        thread.join(5)
        if silent is not None:
            silent.close()
    assert not thread.is_alive()


def test_a_worker_applies_the_policy_and_exports_the_counts(
    broker: ManagementBroker, vhost: str, service_client: Any, namespace: str
) -> None:
    client = service_client(
        "inventory",
        "postgres",
        broker_url=broker.amqp_url(vhost),
        bus_namespace=namespace,
        rabbitmq_management_url=broker.management_url,
        unrouted_max_length=3,
        queue_metrics_seconds=0.2,
        bus_retry_delays="0.2,0.4",
        bus_max_attempts=3,
    )
    names = Names(namespace)
    unrouted = names.unrouted_queue("inventory")
    worker = Worker(client.registry["logistics.service"], client.settings, client.registry)
    health = worker.health_app()
    worker.start()
    try:
        wait_until(lambda: worker.readiness()["status"] == "ready", what="worker ready on the private broker")
        assert worker.broker_policy is not None
        wait_until(worker.broker_policy.applied.is_set, timeout=30, what="the policy applied at start-up")
        held = read_http(vhost, f"{unrouted}.bound", broker.management_url)
        assert held["definition"] == {
            "max-length": 3,
            "overflow": "drop-head",
            "message-ttl": 7 * 24 * 3600 * 1000,
        }
        assert held["pattern"] == f"^{unrouted.replace('.', chr(92) + '.')}$"

        def policy_on_the_queue() -> str:
            return str(queue_http(vhost, unrouted, broker.management_url).get("policy") or "")

        wait_until(
            lambda: policy_on_the_queue() == f"{unrouted}.bound", timeout=30, what="policy on the queue"
        )
        listed = broker.ctl("-q", "list_queues", "-p", vhost, "name", "policy").stdout
        assert f"{unrouted}\t{unrouted}.bound" in listed

        scraped = scrape_app(health)
        assert sample(scraped, "logistics_bus_queue_max_length", queue=unrouted, kind="unrouted") == 3
        consume = names.queue("inventory", worker.consumers[0].handlers[0].name)

        def consume_counts() -> tuple[float | None, float | None]:
            text = scrape_app(health)
            return (
                sample(text, "logistics_bus_queue_messages_ready", queue=consume),
                sample(text, "logistics_bus_queue_messages_unacknowledged", queue=consume),
            )

        wait_until(
            lambda: consume_counts() == (0.0, 0.0), timeout=30, what=f"counts of {consume} on /metrics"
        )
    finally:
        worker.shutdown()

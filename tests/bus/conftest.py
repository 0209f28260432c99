"""Fixtures for bus tests on the machine's RabbitMQ and PostgreSQL.

Every test gets its own bus namespace (exchange and queue prefix), so tests
never see each other's messages, and deletes what it declared afterwards.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from kombu import Connection, Exchange, Queue

from logistics_shared.bus.names import Names
from logistics_shared.bus.topology import declare_producer, producer_exchange
from logistics_shared.events import new_envelope

from ..services import AMQP_URL, need_service
from .proxy import TcpProxy


@pytest.fixture
def rabbit() -> str:
    need_service("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


@pytest.fixture
def namespace(rabbit: str) -> Iterator[str]:
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    _delete_namespace(rabbit, ns)


def _delete_namespace(url: str, ns: str) -> None:
    """Delete every queue and exchange named with the test's prefix."""
    import subprocess

    try:
        out = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
        exchanges = subprocess.run(
            ["rabbitmqctl", "-q", "list_exchanges", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return
    with Connection(url) as conn:
        channel = conn.channel()
        for name in out:
            if name.startswith(ns + "."):
                channel.queue_delete(name)
        for name in exchanges:
            if name.startswith(ns + "."):
                channel.exchange_delete(name)


@pytest.fixture
def proxy(rabbit: str) -> Iterator[TcpProxy]:
    p = TcpProxy("127.0.0.1", 5672)
    yield p
    p.close()


class Tap:
    """A raw kombu consumer on a producer's exchange: what actually went over the wire."""

    def __init__(self, url: str, ns: str, producer: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.url = url
        names = Names(ns)
        self.queue = Queue(
            f"{ns}.tap.{producer}",
            exchange=producer_exchange(names, producer),
            routing_key="#",
            durable=False,
            auto_delete=True,
        )
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(names, producer), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self, names: Names, producer: str) -> None:
        with Connection(self.url) as conn:
            declare_producer(conn.default_channel, names, producer)
            with conn.Consumer([self.queue], on_message=self._on, accept=None):
                self.ready.set()
                while not self.stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.2)

    def _on(self, message: Any) -> None:
        self.messages.append(orjson.loads(message.body))
        message.ack()

    def ids(self) -> list[str]:
        return [m["id"] for m in self.messages]

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def tap(rabbit: str, namespace: str) -> Iterator[Callable[[str], Tap]]:
    taps: list[Tap] = []

    def make(producer: str) -> Tap:
        taps.append(Tap(rabbit, namespace, producer))
        return taps[-1]

    yield make
    for t in taps:
        t.close()


def publish_event(
    url: str,
    ns: str,
    producer: str,
    type: str,
    data: dict[str, Any],
    *,
    body: bytes | None = None,
    event_id: str | None = None,
) -> str:
    """Publish one event (or raw bytes) to a producer's exchange, confirmed."""
    envelope = new_envelope(type, data, producer=producer)
    payload = envelope.to_dict()
    if event_id:
        payload["id"] = event_id
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        exchange = producer_exchange(Names(ns), producer)
        declare_producer(conn.default_channel, Names(ns), producer)
        conn.Producer().publish(
            body if body is not None else orjson.dumps(payload),
            exchange=exchange,
            routing_key=type,
            content_type="application/json",
            delivery_mode=2,
            message_id=payload["id"],
        )
    return payload["id"]


def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


__all__ = ["Exchange", "Tap", "publish_event", "wait_until"]

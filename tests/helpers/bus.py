"""The bus as tests watch it: a tap on a producer's exchange, publishing an event by hand,
unpublished outbox rows, and waiting for a condition (which fails, saying what for)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from kombu import Connection, Queue
from sqlalchemy import text

from logistics_shared.bus.names import Names
from logistics_shared.bus.topology import declare_producer, producer_exchange
from logistics_shared.events import new_envelope


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
        """Until ``count`` messages arrived; fails (saying how many did) when they do not."""
        wait_until(
            lambda: len(self.messages) >= count,
            timeout,
            what=f"{count} messages on the tap of {self.queue.name} (got {len(self.messages)})",
        )

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


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


def unpublished(client) -> int:
    with client.engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")).scalar_one()


def forget_seeded_events(client) -> None:
    """Delete the outbox rows seeding wrote (the catalogue's ``item.*`` / ``warehouse.*``
    events), for a test that counts what its own requests publish."""
    with client.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM outbox WHERE event_type LIKE 'item.%' OR event_type LIKE 'warehouse.%'")
        )

"""Operating a service's dead-letter queue: list, show, replay, purge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import Settings
from .connection import broker_connection, connection_factory
from .names import Names
from .publisher import Outgoing, make_publisher
from .topology import dlq as dlq_queue


@dataclass
class DeadLetter:
    message_id: str
    headers: dict[str, Any]
    body: bytes

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "handler": self.headers.get("x-handler"),
            "reason": self.headers.get("x-death-reason"),
            "attempts": self.headers.get("x-attempts"),
            "routing_key": self.headers.get("x-original-routing-key"),
            "dead_lettered_at": self.headers.get("x-dead-lettered-at"),
            "error": (self.headers.get("x-error") or "").splitlines()[-1:] or [""],
        }


class DeadLetterQueue:
    def __init__(self, settings: Settings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.names = Names(settings.bus_namespace)
        self.queue_name = self.names.dlq(service)

    def _connect(self) -> Any:
        return broker_connection(connection_factory(self.settings, heartbeat=False))

    def peek(self, limit: int = 1000) -> list[DeadLetter]:
        """Read without removing: every message fetched is put back afterwards."""
        found, held = [], []
        with self._connect() as conn:
            channel = conn.channel()
            queue = dlq_queue(self.names, self.service)(channel)
            queue.declare()
            for _ in range(limit):
                message = queue.get(no_ack=False)
                if message is None:
                    break
                held.append(message)
                found.append(_dead_letter(message))
            # Requeue explicitly: the memory transport does not restore what a
            # closing channel fetched with basic_get, RabbitMQ would.
            for message in held:
                message.requeue()
            channel.close()
        return found

    def replay(self, message_id: str | None = None) -> int:
        """Send dead letters back to their handler's queue (all, or one by message id)."""
        return self._drain(message_id, replay=True)

    def purge(self, message_id: str | None = None) -> int:
        return self._drain(message_id, replay=False)

    def _drain(self, message_id: str | None, *, replay: bool) -> int:
        done = 0
        with self._connect() as conn, self._connect() as side:
            channel = conn.channel()
            queue = dlq_queue(self.names, self.service)(channel)
            queue.declare()
            publisher = make_publisher(side, self.settings.bus_confirm_timeout) if replay else None
            seen, skipped = 0, []
            depth = queue.queue_declare(passive=True).message_count
            while seen < depth:
                message = queue.get(no_ack=False)
                if message is None:
                    break
                seen += 1
                letter = _dead_letter(message)
                if message_id is not None and letter.message_id != message_id:
                    skipped.append(message)
                    continue
                if publisher is not None:
                    target = letter.headers.get("x-original-queue")
                    if not target:
                        skipped.append(message)
                        continue
                    headers = {k: v for k, v in letter.headers.items() if not k.startswith("x-death")}
                    headers.update({"x-attempts": 0, "x-replayed-from-dlq": True})
                    result = publisher.publish(
                        [
                            Outgoing(
                                key=1,
                                exchange="",
                                routing_key=target,
                                body=letter.body,
                                message_id=letter.message_id,
                                headers=headers,
                            )
                        ]
                    )
                    if result.confirmed != [1]:
                        raise ConnectionError("the broker did not confirm the replayed message")
                message.ack()
                done += 1
            for message in skipped:
                message.requeue()
            channel.close()
        return done


def _dead_letter(message: Any) -> DeadLetter:
    properties = message.properties or {}
    return DeadLetter(
        message_id=properties.get("message_id") or "",
        headers=dict(message.headers or {}),
        body=message.body if isinstance(message.body, bytes) else bytes(message.body, "utf-8"),
    )

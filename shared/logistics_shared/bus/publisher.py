"""Publishing with publisher confirms awaited per batch, not per message.

Kombu's ``confirm_publish`` waits for each message's confirm before sending
the next, which caps throughput at one broker round trip per message. Here
the channel is put in confirm mode once, a whole batch is sent, and the acks
(``multiple`` ones included) are collected until every delivery tag is
settled or the confirm timeout passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import amqp
from kombu.connection import Connection
from kombu.entity import Exchange
from kombu.messaging import Producer

from .connection import coalesced_writes


class ConfirmTimeout(Exception):
    """Some confirms did not arrive in time; the connection must be replaced."""


@dataclass(frozen=True)
class Outgoing:
    key: Any  # the caller's handle (an outbox row id), reported back in the result
    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    headers: dict[str, Any] = field(default_factory=dict)
    mandatory: bool = True


@dataclass
class BatchResult:
    confirmed: list[Any] = field(default_factory=list)
    nacked: list[Any] = field(default_factory=list)
    returned: list[Any] = field(default_factory=list)


class ConfirmingPublisher:
    """py-amqp channel in confirm mode; one call publishes and settles a batch."""

    def __init__(self, connection: Connection, confirm_timeout: float) -> None:
        self.connection = connection
        self.confirm_timeout = confirm_timeout
        self.channel: amqp.Channel = connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.events["basic_return"].add(self._on_return)
        self._next_tag = 1
        self._pending: dict[int, Any] = {}
        self._result = BatchResult()
        self._by_message_id: dict[str, Any] = {}

    def _settle(self, tag: int, multiple: bool, into: list[Any]) -> None:
        tags = [t for t in self._pending if t <= tag] if multiple else [tag]
        for t in tags:
            key = self._pending.pop(t, None)
            if key is not None:
                into.append(key)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, self._result.confirmed)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, self._result.nacked)

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        # A return precedes the ack of the same message; remember it so the
        # caller can park the row instead of publishing it again forever.
        key = self._by_message_id.get(message.properties.get("message_id"))
        if key is not None:
            self._result.returned.append(key)

    def publish(self, batch: list[Outgoing]) -> BatchResult:
        self._result = BatchResult()
        self._by_message_id = {m.message_id: m.key for m in batch}
        # The whole batch leaves in one write: per message it is one system call less.
        with coalesced_writes(self.connection):
            for item in batch:
                message = amqp.Message(
                    item.body,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,  # persistent
                    message_id=item.message_id,
                    application_headers=item.headers,
                )
                self.channel.basic_publish(
                    message, exchange=item.exchange, routing_key=item.routing_key, mandatory=item.mandatory
                )
                self._pending[self._next_tag] = item.key
                self._next_tag += 1
        deadline = time.monotonic() + self.confirm_timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfirmTimeout(f"{len(self._pending)} of {len(batch)} messages unconfirmed")
            try:
                self.connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        returned = set(self._result.returned)
        self._result.confirmed = [k for k in self._result.confirmed if k not in returned]
        return self._result


class PlainPublisher:
    """For transports without confirms (the embedded ``memory://``): sent is settled.

    The in-process transport cannot lose a message between two threads of one
    process, so treating a send as confirmed is honest there; it is never used
    with RabbitMQ.
    """

    def __init__(self, connection: Connection) -> None:
        self.producer = Producer(connection.channel())

    def publish(self, batch: list[Outgoing]) -> BatchResult:
        result = BatchResult()
        for item in batch:
            self.producer.publish(
                item.body,
                exchange=Exchange(item.exchange) if item.exchange else "",
                routing_key=item.routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                headers=item.headers,
                message_id=item.message_id,
            )
            result.confirmed.append(item.key)
        return result


def supports_confirms(connection: Connection) -> bool:
    driver: str = connection.transport.driver_type
    return driver == "amqp"


def make_publisher(connection: Connection, confirm_timeout: float) -> ConfirmingPublisher | PlainPublisher:
    if supports_confirms(connection):
        return ConfirmingPublisher(connection, confirm_timeout)
    return PlainPublisher(connection)

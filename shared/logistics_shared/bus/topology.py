"""Declaring exchanges and queues, idempotently, by the worker at start.

Every declaration of an exchange goes through :func:`producer_exchange`, so
its arguments (the alternate exchange) are identical wherever it is declared:
RabbitMQ refuses a re-declaration with different arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kombu.entity import Exchange, Queue, binding

from .handlers import Handler
from .names import Names

if TYPE_CHECKING:
    # kombu annotates a channel of any transport (py-amqp's for amqp://) as this one.
    from kombu.transport.virtual import Channel


def producer_exchange(names: Names, producer: str) -> Exchange:
    return Exchange(
        names.exchange(producer),
        type="topic",
        durable=True,
        arguments={"alternate-exchange": names.unrouted_exchange(producer)},
    )


def unrouted(names: Names, producer: str) -> tuple[Exchange, Queue]:
    exchange = Exchange(names.unrouted_exchange(producer), type="fanout", durable=True)
    return exchange, Queue(names.unrouted_queue(producer), exchange=exchange, durable=True)


def handler_queue(names: Names, consumer: str, handler: Handler) -> Queue:
    exchange = producer_exchange(names, handler.producer)
    return Queue(
        names.queue(consumer, handler.name),
        exchange=exchange,
        bindings=[binding(exchange, routing_key=event) for event in handler.events],
        durable=True,
    )


def delay_queue(names: Names, consumer: str, handler: Handler, delay_seconds: float) -> Queue:
    """Holds a failed message for ``delay_seconds``, then dead-letters it back to its queue."""
    delay_ms = int(delay_seconds * 1000)
    return Queue(
        names.delay_queue(consumer, handler.name, delay_ms),
        durable=True,
        queue_arguments={
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": names.queue(consumer, handler.name),
        },
    )


def dlq(names: Names, consumer: str) -> Queue:
    return Queue(names.dlq(consumer), durable=True)


def declare_producer(channel: Channel, names: Names, producer: str) -> None:
    ae, parking = unrouted(names, producer)
    ae(channel).declare()
    parking(channel).declare()
    producer_exchange(names, producer)(channel).declare()


def declare_consumer(
    channel: Channel,
    names: Names,
    consumer: str,
    handlers: Iterable[Handler],
    delays: Iterable[float],
    *,
    with_delay_queues: bool,
) -> list[Queue]:
    queues = []
    for producer in sorted({h.producer for h in handlers}):
        declare_producer(channel, names, producer)
    for handler in handlers:
        queue = handler_queue(names, consumer, handler)(channel)
        queue.declare()
        queues.append(queue)
        if with_delay_queues:
            for delay in sorted(set(delays)):
                delay_queue(names, consumer, handler, delay)(channel).declare()
    dlq(names, consumer)(channel).declare()
    return queues

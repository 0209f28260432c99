"""Idempotent consumers: inbox row + effect in one transaction, ack after commit.

Failures never lose a message: a handler error goes to a delay queue and comes
back with backoff; after ``bus_max_attempts`` it is dead-lettered with the
error; an undecodable or unknown message is dead-lettered at once (never the
silent ack ``ConsumerMixin`` does by default). The retry/DLQ copy is confirmed
by the broker before the original is acked.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer
from marshmallow import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from ..db import insert_unless_exists
from ..events import REGISTRY, EventRegistry, UnknownEvent
from ..logs import describe_error
from ..metrics import BusMetrics
from ..outbox import Outbox
from ..platform_tables import PlatformTables
from ..settings import Settings
from .backoff import Backoff
from .connection import broker_connection, buffer_reads
from .drain import DrainMarker, DrainWatch
from .handlers import Handler
from .names import Names
from .publisher import Outgoing, make_publisher, supports_confirms
from .topology import declare_consumer

log = logging.getLogger(__name__)

#: After the first delivery, how long the consumer goes on gathering the deliveries the
#: broker is pushing before it applies them in one transaction (at most the prefetch),
#: so messages that arrive close together share a commit also at low rates ...
LINGER_SECONDS = 0.002
#: ... and how long a pause in deliveries ends the gathering early.
GAP_SECONDS = 0.0005

#: Test-only: ``before_commit`` or ``after_commit`` makes the process die
#: (``os._exit``) at that point of handling, to prove redelivery is safe.
CRASH_POINT_ENV = "LOGISTICS_TEST_CRASH_POINT"


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_POINT_ENV) == name:
        os._exit(70)


class EventConsumer:
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        session_factory: sessionmaker[Session],
        platform: PlatformTables,
        handlers: tuple[Handler, ...],
        metrics: BusMetrics,
        connect: Callable[[], Connection],
        registry: EventRegistry = REGISTRY,
        linger: float = LINGER_SECONDS,
        gap: float = GAP_SECONDS,
        drain: DrainWatch | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.session_factory = session_factory
        self.platform = platform
        self.handlers = handlers
        self.metrics = metrics
        self.connect = connect
        self.registry = registry
        self.names = Names(settings.bus_namespace)
        self.connected = threading.Event()
        self._side: Any = None
        self._delays_enabled = True
        self.linger = linger
        self.gap = gap
        self._buffer: list[tuple[Handler, Message]] = []
        # Messages whose effect committed, acked together once the buffer is applied.
        self._applied: list[Message] = []
        self._ack_multiple = False
        self._inbox_insert: Any = None
        # Drain marks of the read models the web checks requests against (see drain.py).
        self._drain = DrainMarker(drain, session_factory) if drain is not None else None

    # -- the loop ---------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                with (
                    broker_connection(self.connect) as connection,
                    broker_connection(self.connect) as side_connection,
                ):
                    connection.ensure_connection(max_retries=1)
                    buffer_reads(connection)
                    self._consume(connection, side_connection, stop, backoff)
            except Exception as exc:  # noqa: BLE001 - any failure: back off and reconnect
                self.connected.clear()
                delay = backoff.next()
                log.warning(
                    "consumer interrupted (%s); reconnecting in %.1fs",
                    describe_error(exc),
                    delay,
                    extra={"service": self.service},
                )
                stop.wait(delay)
        self.connected.clear()

    def _consume(
        self, connection: Connection, side_connection: Connection, stop: threading.Event, backoff: Backoff
    ) -> None:
        channel = connection.channel()
        self._delays_enabled = supports_confirms(connection)
        # memory:// ignores basic_ack's "multiple" and acks the one message only.
        self._ack_multiple = self._delays_enabled
        queues = declare_consumer(
            channel,
            self.names,
            self.service,
            self.handlers,
            self.settings.retry_delays,
            with_delay_queues=self._delays_enabled,
        )
        # Retries and dead letters go out on a connection of their own: waiting
        # for their confirm on the consuming connection would dispatch new
        # deliveries re-entrantly from inside a handler.
        side_connection.ensure_connection(max_retries=1)
        buffer_reads(side_connection)
        self._side = make_publisher(side_connection, self.settings.bus_confirm_timeout)
        # Positional: py-amqp calls the third argument a_global, kombu's memory transport apply_global.
        channel.basic_qos(0, self.settings.bus_prefetch, False)
        # One kombu Consumer per handler queue, each with its own tag prefix:
        # without one, two Consumers on a channel can get the same consumer tag
        # and the second silently takes over the first one's deliveries.
        consumers = [
            Consumer(
                channel,
                queues=[queue],
                on_message=self._callback(handler),
                no_ack=False,
                tag_prefix=f"{self.service}.{handler.name}.{uuid.uuid4().hex[:8]}.",
            )
            for queue, handler in zip(queues, self.handlers, strict=True)
        ]
        for consumer in consumers:
            consumer.consume()
        self.connected.set()
        if self._drain is not None:
            self._drain.started()
        backoff.reset()
        log.info("consuming", extra={"service": self.service, "queues": [q.name for q in queues]})
        try:
            while not stop.is_set():
                # Deliveries can also arrive while consume() waits for its
                # consume-ok: handle what is buffered before waiting for more.
                if not self._buffer:
                    try:
                        connection.drain_events(timeout=1.0)
                    except TimeoutError:
                        connection.heartbeat_check()
                        self._idle()
                        continue
                self._gather(connection)
                self._flush()
                self._idle()
        finally:
            self._buffer.clear()  # unacked: the broker redelivers them
            self._applied.clear()
            if self._drain is not None:
                self._drain.stopped()  # a consumer that stopped drains nothing
            for consumer in consumers:
                try:
                    consumer.cancel()
                except Exception:
                    log.debug("cancel failed", exc_info=True)

    def _idle(self) -> None:
        if self._drain is not None:
            self._drain.idle()

    def _callback(self, handler: Handler) -> Callable[[Message], None]:
        return lambda message: self._buffer.append((handler, message))

    def _gather(self, connection: Connection) -> None:
        """Take the deliveries that follow the first one closely, up to the prefetch."""
        deadline = time.monotonic() + self.linger
        while len(self._buffer) < self.settings.bus_prefetch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                connection.drain_events(timeout=min(self.gap, remaining))
            except TimeoutError:
                break

    def _flush(self) -> None:
        buffered, self._buffer = self._buffer, []
        groups: dict[str, tuple[Handler, list[Message]]] = {}
        for handler, message in buffered:
            groups.setdefault(handler.name, (handler, []))[1].append(message)
        if self._drain is not None:
            # Before the effects commit: the web stops trusting the read model first.
            self._drain.delivered(groups)
        for handler, messages in groups.values():
            self.handle_batch(handler, messages)
        self._ack_applied([message for _, message in buffered])

    def _ack_applied(self, buffered: list[Message]) -> None:
        """Ack every message whose effect committed: one ``basic.ack`` for all on RabbitMQ.

        A multiple ack settles every delivery of the channel up to its tag; it is
        used only when each other unsettled one of the buffer is among them
        (failures were acked one by one after their retry or dead-letter copy
        was confirmed, and nothing else is in flight while the buffer is applied).
        """
        applied, self._applied = self._applied, []
        if not applied:
            return
        if self._ack_multiple and len(applied) > 1:
            last = max(applied, key=lambda m: m.delivery_tag)
            ours = {id(m) for m in applied}
            if all(m.acknowledged or id(m) in ours for m in buffered if m.delivery_tag <= last.delivery_tag):
                last.ack(multiple=True)
                return
        for message in applied:
            message.ack()

    # -- messages ---------------------------------------------------------------
    def _decode(self, handler: Handler, message: Message) -> tuple[dict[str, Any], int] | None:
        """The envelope and attempt number, or ``None`` after dead-lettering it."""
        headers = dict(message.headers or {})
        attempt = int(headers.get("x-attempts", 0)) + 1
        try:
            body = orjson.loads(message.body)
            if not isinstance(body, dict):
                raise ValueError("the message is not a JSON object")
            return self.registry.load_incoming(body), attempt
        except (orjson.JSONDecodeError, ValueError, TypeError, ValidationError) as exc:
            self._dead_letter(handler, message, "undecodable", f"{exc.__class__.__name__}: {exc}", attempt)
        except UnknownEvent as exc:
            self._dead_letter(handler, message, "unknown_event", str(exc), attempt)
        message.ack()
        return None

    def handle_batch(self, handler: Handler, messages: list[Message]) -> None:
        """Apply buffered messages in one transaction; on any error, one at a time.

        One commit per batch instead of per message is what lets a consumer
        keep up with the relay; the fallback keeps one poisoned event from
        failing (or retrying) its neighbours.
        """
        decoded = [(m, *found) for m in messages if (found := self._decode(handler, m)) is not None]
        if len(decoded) > 1:
            started = time.perf_counter()
            try:
                fresh = self.apply_many(handler, [envelope for _, envelope, _ in decoded])
            except Exception:  # noqa: BLE001 - retried one by one below, where errors are handled
                log.info("batch of %d failed for %s; applying one by one", len(decoded), handler.name)
            else:
                labels = (self.service, handler.name)
                per_message = (time.perf_counter() - started) / len(decoded)
                for _ in decoded:
                    self.metrics.handler_seconds.labels(*labels).observe(per_message)
                self.metrics.consumed.labels(*labels).inc(fresh)
                self.metrics.duplicates.labels(*labels).inc(len(decoded) - fresh)
                self._applied.extend(message for message, _, _ in decoded)
                return
        for message, envelope, attempt in decoded:
            self._handle_one(handler, message, envelope, attempt)

    def _handle_one(self, handler: Handler, message: Message, envelope: dict[str, Any], attempt: int) -> None:
        started = time.perf_counter()
        try:
            applied = self.apply(handler, envelope)
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            error = "".join(traceback.format_exception_only(exc)).strip()
            if attempt >= self.settings.bus_max_attempts:
                log.error("handler %s gave up on %s: %s", handler.name, envelope["id"], error)
                self._dead_letter(handler, message, "handler_failed", error, attempt)
            else:
                log.warning(
                    "handler %s failed on %s (attempt %d): %s", handler.name, envelope["id"], attempt, error
                )
                self._retry(handler, message, attempt, error)
            message.ack()
            return
        labels = (self.service, handler.name)
        self.metrics.handler_seconds.labels(*labels).observe(time.perf_counter() - started)
        (self.metrics.consumed if applied else self.metrics.duplicates).labels(*labels).inc()
        self._applied.append(message)

    def apply(self, handler: Handler, envelope: dict[str, Any]) -> bool:
        """Apply once: ``False`` when the inbox already holds (handler, event id)."""
        event_id = str(envelope["id"])
        with self.session_factory() as session:
            with session.begin():
                fresh = insert_unless_exists(
                    session,
                    self.platform.inbox,
                    {
                        "handler": handler.name,
                        "event_id": event_id,
                        "event_type": envelope["type"],
                        "processed_at": datetime.now(UTC),
                    },
                    ["handler", "event_id"],
                )
                if not fresh:
                    return False
                handler.func(session, envelope, self._outbox(session, envelope))
                _crash_point("before_commit")
            _crash_point("after_commit")
        return True

    def apply_many(self, handler: Handler, envelopes: list[dict[str, Any]]) -> int:
        """Apply a batch in one transaction; returns how many were new (not in the inbox)."""
        unique: dict[str, dict[str, Any]] = {}
        for envelope in envelopes:
            unique.setdefault(str(envelope["id"]), envelope)
        now = datetime.now(UTC)
        rows = [
            {"handler": handler.name, "event_id": event_id, "event_type": e["type"], "processed_at": now}
            for event_id, e in unique.items()
        ]
        with self.session_factory() as session:
            with session.begin():
                # One INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING RETURNING for the batch.
                fresh = set(session.execute(self._inbox_statement(session), rows).scalars())
                for event_id, envelope in unique.items():
                    if event_id in fresh:
                        handler.func(session, envelope, self._outbox(session, envelope))
                _crash_point("before_commit")
            _crash_point("after_commit")
        return len(fresh)

    def _inbox_statement(self, session: Session) -> Any:
        if self._inbox_insert is None:
            inbox = self.platform.inbox
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            # Executed with a list of rows: SQLAlchemy's "insertmanyvalues" sends them as one
            # statement, compiled once (a .values([...]) statement is compiled per batch size).
            self._inbox_insert = (
                insert(inbox)
                .on_conflict_do_nothing(index_elements=["handler", "event_id"])
                .returning(inbox.c.event_id)
            )
        return self._inbox_insert

    def _outbox(self, session: Session, envelope: dict[str, Any]) -> Outbox:
        return Outbox(
            session,
            self.platform.outbox,
            producer=self.service,
            correlation_id=envelope["correlation_id"],
            causation_id=str(envelope["id"]),
        )

    # -- failure paths ---------------------------------------------------------------
    def _origin(self, message: Message) -> dict[str, Any]:
        headers = dict(message.headers or {})
        info = message.delivery_info or {}
        headers.setdefault("x-original-exchange", info.get("exchange", ""))
        headers.setdefault("x-original-routing-key", info.get("routing_key", ""))
        return headers

    def _send(self, routing_key: str, message: Message, headers: dict[str, Any]) -> None:
        message_id = (message.properties or {}).get("message_id") or headers.get("x-message-id") or ""
        result = self._side.publish(
            [
                Outgoing(
                    key=1,
                    exchange="",
                    routing_key=routing_key,
                    body=message.body,
                    message_id=message_id,
                    headers=headers,
                )
            ]
        )
        if result.confirmed != [1]:
            raise ConnectionError(f"the broker did not accept the copy for {routing_key}")

    def _retry(self, handler: Handler, message: Message, attempt: int, error: str) -> None:
        headers = self._origin(message)
        headers.update({"x-attempts": attempt, "x-last-error": error[:1000]})
        queue = self.names.queue(self.service, handler.name)
        if self._delays_enabled:
            delays = self.settings.retry_delays
            delay = delays[min(attempt - 1, len(delays) - 1)]
            target = self.names.delay_queue(self.service, handler.name, int(delay * 1000))
        else:
            # memory:// has no message TTL: the retry comes back at once (documented).
            delay, target = 0.0, queue
        self._send(target, message, headers)
        if self._drain is not None:
            self._drain.retried(handler.name, delay)
        self.metrics.retried.labels(self.service, handler.name).inc()

    def _dead_letter(self, handler: Handler, message: Message, reason: str, error: str, attempt: int) -> None:
        headers = self._origin(message)
        headers.update(
            {
                "x-attempts": attempt,
                "x-death-reason": reason,
                "x-error": error[:4000],
                "x-handler": handler.name,
                "x-original-queue": self.names.queue(self.service, handler.name),
                "x-dead-lettered-at": datetime.now(UTC).isoformat(),
            }
        )
        self._send(self.names.dlq(self.service), message, headers)
        self.metrics.dead_lettered.labels(self.service, handler.name, reason).inc()
        log.error("dead-lettered a message for %s (%s): %s", handler.name, reason, error[:200])

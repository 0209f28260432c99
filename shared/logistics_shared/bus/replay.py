"""Re-sending a service's own events to one consumer's queue (``logistics replay``).

A read model that starts empty (a new consumer, a consumer's fresh database) is
filled from the producer's outbox: published rows are kept for
``outbox_retention_hours`` (the relay deletes them after that), each with the
exact envelope that went out, under its original event id. A replay publishes
those envelopes through the default exchange straight to the one consumer's
durable queue, persistent and confirmed, so

* no other consumer sees them (the producer's exchange is not involved), and
* no webhook delivery is written (the fan-out happens in the relay, which a
  replay does not go through).

The consumer's inbox (``(handler, event id)``) turns an event it applied already
into a no-op, so replaying an overlapping window, or twice, changes nothing.

A **snapshot** (``--snapshot``) is for what the outbox no longer holds: the producer
builds one ``*.updated`` event per current entity (``ServiceSpec.snapshots``, see
``logistics_shared.snapshot``), each with a fresh id, the snapshot run as its
correlation id and the entity's current version, validated like every produced
event, and sends them the same way (the same publishing code, to the one queue).
The consumer's version guard, not its inbox, makes a snapshot idempotent.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from ..db import aware
from ..outbox import Outbox
from ..service import ServiceSpec
from ..settings import Settings
from ..snapshot import SnapshotSource
from .connection import broker_connection, connection_factory
from .handlers import Handler
from .names import Names
from .publisher import ConfirmingPublisher, Outgoing, supports_confirms
from .topology import declare_producer, handler_queue


class ReplayError(Exception):
    """An operator's mistake or a broker refusal: one line, no traceback."""


@dataclass(frozen=True)
class Consumer:
    """One consumer of a producer's events: a (service, handler) pair and its queue."""

    service: str
    handler: Handler

    @property
    def name(self) -> str:
        """``service.handler``, as ``logistics events`` prints it."""
        return f"{self.service}.{self.handler.name}"


def consumers_of(producer: str, services: Mapping[str, ServiceSpec]) -> dict[str, Consumer]:
    """Every handler of the installed services that takes ``producer``'s events, by name."""
    found: dict[str, Consumer] = {}
    for name, spec in services.items():
        for handler in spec.handlers() if spec.handlers else ():
            if handler.producer == producer:
                consumer = Consumer(name, handler)
                found[consumer.name] = consumer
    return dict(sorted(found.items()))


def find_consumer(producer: str, name: str, services: Mapping[str, ServiceSpec]) -> Consumer:
    known = consumers_of(producer, services)
    if name not in known:
        valid = ", ".join(known) or "none"
        raise ReplayError(f"{name!r} consumes no {producer} events; consumers of {producer}: {valid}")
    return known[name]


@dataclass(frozen=True)
class Selection:
    """Which outbox rows a replay sends: published ones, ``since <= created_at < until``."""

    types: tuple[str, ...]
    since: datetime
    until: datetime | None = None

    def where(self, outbox: Table) -> list[Any]:
        clauses = [
            outbox.c.published_at.is_not(None),
            outbox.c.event_type.in_(self.types),
            outbox.c.created_at >= self.since,
        ]
        if self.until is not None:
            clauses.append(outbox.c.created_at < self.until)
        return clauses


def selection_for(
    consumer: Consumer, types: tuple[str, ...], since: datetime, until: datetime | None
) -> Selection:
    """The consumer's types (all of them, or those of ``types``, each of which it must take)."""
    takes = consumer.handler.events
    unknown = [t for t in types if t not in takes]
    if unknown:
        raise ReplayError(f"{consumer.name} does not take {', '.join(unknown)}; it takes: {', '.join(takes)}")
    if until is not None and until <= since:
        raise ReplayError("--until must be later than --since")
    return Selection(types=tuple(dict.fromkeys(types)) or takes, since=since, until=until)


@dataclass
class ReplayResult:
    #: Events sent (or, in a dry run, that would be sent), per type.
    by_type: Counter[str] = field(default_factory=Counter)
    #: The oldest published row the outbox still holds (older ones were deleted).
    oldest_kept: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


@dataclass(frozen=True)
class Sendable:
    """One event to send: its handle in the batch, id, type and serialized envelope."""

    key: Any
    event_id: str
    event_type: str
    payload: str


class _ToOneQueue:
    """Publishes batches of envelopes to one consumer's queue, each batch confirmed."""

    def __init__(
        self,
        *,
        producer: str,
        consumer: Consumer,
        settings: Settings,
        session_factory: sessionmaker[Session],
        batch_size: int | None = None,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.settings = settings
        self.session_factory = session_factory
        self.batch_size = batch_size or settings.outbox_batch_size
        self.names = Names(settings.bus_namespace)

    @property
    def queue(self) -> str:
        return self.names.queue(self.consumer.service, self.consumer.handler.name)

    def batches(self) -> Iterator[list[Sendable]]:
        """What a run sends, one batch (at most ``batch_size`` events) at a time."""
        raise NotImplementedError

    def run(self, progress: Callable[[ReplayResult], None] | None = None) -> ReplayResult:
        """Send every batch, one confirmed batch at a time; ``progress`` after each batch."""
        if not self.settings.broker_url.startswith(("amqp", "pyamqp")):
            # memory:// lives inside one process: nothing another process sends there arrives.
            raise ReplayError("a replay needs RabbitMQ (LOGISTICS_BROKER_URL amqp://...)")
        result = ReplayResult()
        with broker_connection(connection_factory(self.settings, heartbeat=False)) as connection:
            connection.ensure_connection(max_retries=1)
            if not supports_confirms(connection):
                raise ReplayError("the broker does not confirm publishes")
            channel = connection.default_channel
            # Declared exactly as the consumer's worker declares it (idempotent): a replay run
            # before that worker's first start waits in the queue for it.
            declare_producer(channel, self.names, self.consumer.handler.producer)
            handler_queue(self.names, self.consumer.service, self.consumer.handler)(channel).declare()
            publisher = ConfirmingPublisher(connection, self.settings.bus_confirm_timeout)
            for batch in self.batches():
                self._send(publisher, batch)
                result.by_type.update(row.event_type for row in batch)
                if progress is not None:
                    progress(result)
        return result

    def _send(self, publisher: ConfirmingPublisher, rows: list[Sendable]) -> None:
        batch = [
            Outgoing(
                key=row.key,
                exchange="",  # the default exchange: straight to the one queue named
                routing_key=self.queue,
                body=row.payload.encode(),
                message_id=row.event_id,
                headers={"x-replayed-to": self.consumer.name},
            )
            for row in rows
        ]
        outcome = publisher.publish(batch)
        if outcome.returned or outcome.nacked or len(outcome.confirmed) != len(batch):
            raise ReplayError(
                f"the broker did not take every event for {self.queue} "
                f"({len(outcome.nacked)} nacked, {len(outcome.returned)} returned); run the replay again"
            )


class Replay(_ToOneQueue):
    """Sends the selected outbox rows of ``producer`` to ``consumer``'s queue, in outbox order."""

    def __init__(
        self,
        *,
        producer: str,
        consumer: Consumer,
        selection: Selection,
        settings: Settings,
        session_factory: sessionmaker[Session],
        outbox: Table,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(
            producer=producer,
            consumer=consumer,
            settings=settings,
            session_factory=session_factory,
            batch_size=batch_size,
        )
        self.selection = selection
        self.outbox = outbox

    def count(self) -> ReplayResult:
        """What a replay would send, per type, without sending anything."""
        outbox = self.outbox
        result = ReplayResult()
        with self.session_factory() as session:
            rows = session.execute(
                select(outbox.c.event_type, func.count())
                .where(*self.selection.where(outbox))
                .group_by(outbox.c.event_type)
            ).all()
            for event_type, count in rows:
                result.by_type[event_type] = count
            oldest = session.execute(
                select(func.min(outbox.c.created_at)).where(outbox.c.published_at.is_not(None))
            ).scalar_one()
            result.oldest_kept = aware(oldest)
        return result

    def batches(self) -> Iterator[list[Sendable]]:
        after = 0
        while batch := self._batch(after):
            yield batch
            after = batch[-1].key

    def _batch(self, after: int) -> list[Sendable]:
        outbox = self.outbox
        with self.session_factory() as session:
            return [
                Sendable(row.id, row.event_id, row.event_type, row.payload)
                for row in session.execute(
                    select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.payload)
                    .where(outbox.c.id > after, *self.selection.where(outbox))
                    .order_by(outbox.c.id)
                    .limit(self.batch_size)
                )
            ]


# -- snapshots: the producer's current state instead of its outbox ----------------------------
def snapshot_sources(
    producer: str, spec: ServiceSpec, consumer: Consumer, types: tuple[str, ...]
) -> tuple[SnapshotSource, ...]:
    """The sources of ``producer`` whose events ``consumer`` takes (those of ``types``, if given)."""
    if spec.snapshots is None:
        raise ReplayError(f"{producer} declares no snapshots; replay its outbox with --since instead")
    offered = {source.event_type: source for source in spec.snapshots()}
    takes = consumer.handler.events
    unknown = [t for t in types if t not in takes]
    if unknown:
        raise ReplayError(f"{consumer.name} does not take {', '.join(unknown)}; it takes: {', '.join(takes)}")
    missing = [t for t in types if t not in offered]
    if missing:
        raise ReplayError(
            f"{producer} makes no {', '.join(missing)} snapshot; it snapshots: {', '.join(offered)}"
        )
    chosen = tuple(offered[t] for t in dict.fromkeys(types)) or tuple(
        source for source in offered.values() if source.event_type in takes
    )
    if not chosen:
        raise ReplayError(
            f"{consumer.name} takes none of {producer}'s snapshot events ({', '.join(offered)})"
        )
    return chosen


def snapshot_run_id(producer: str) -> str:
    """The correlation id of every event of one snapshot run: names the run in logs and traces."""
    return f"snapshot:{producer}:{datetime.now(UTC):%Y%m%dT%H%M%SZ}:{uuid.uuid4().hex[:8]}"


class Snapshot(_ToOneQueue):
    """Sends one event per current entity of each source to ``consumer``'s queue, by primary key."""

    def __init__(
        self,
        *,
        producer: str,
        consumer: Consumer,
        sources: tuple[SnapshotSource, ...],
        settings: Settings,
        session_factory: sessionmaker[Session],
        outbox: Table,
        batch_size: int | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(
            producer=producer,
            consumer=consumer,
            settings=settings,
            session_factory=session_factory,
            batch_size=batch_size,
        )
        self.sources = sources
        self.outbox = outbox
        self.run_id = run_id or snapshot_run_id(producer)

    def count(self) -> ReplayResult:
        """How many events a snapshot would send now, per type."""
        result = ReplayResult()
        with self.session_factory() as session:
            for source in self.sources:
                result.by_type[source.event_type] = source.count(session)
        return result

    def batches(self) -> Iterator[list[Sendable]]:
        for source in self.sources:
            after: Any = None
            while True:
                with self.session_factory() as session:
                    page = source.page(session, after, self.batch_size)
                    # Built as the outbox builds every produced event (strict validation, the
                    # same serialization); nothing is written to the outbox.
                    outbox = Outbox(session, self.outbox, producer=self.producer, correlation_id=self.run_id)
                    batch = []
                    for index, (_key, data) in enumerate(page):
                        _envelope, row = outbox.build(source.event_type, data)
                        batch.append(Sendable(index, row["event_id"], source.event_type, row["payload"]))
                if not batch:
                    break
                yield batch
                after = page[-1][0]

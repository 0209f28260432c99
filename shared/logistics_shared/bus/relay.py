"""The outbox relay: committed outbox rows -> the producer's exchange, confirmed.

Rows are claimed in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
relay replicas neither skip nor double-send; SQLite serialises a single
claimer), published persistent and mandatory, and marked published in the
same transaction only once the broker has confirmed them. A crash between
publish and commit republishes the batch: consumers de-duplicate by event id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kombu.connection import Connection
from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..logs import describe_error
from ..metrics import BusMetrics
from ..outbox import notify_channel
from ..settings import Settings
from ..webhooks.fanout import Fanout
from .backoff import Backoff
from .connection import broker_connection, buffer_reads
from .names import Names
from .publisher import ConfirmingPublisher, ConfirmTimeout, Outgoing, PlainPublisher, make_publisher
from .topology import declare_producer, unrouted

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        session_factory: sessionmaker[Session],
        outbox: Table,
        metrics: BusMetrics,
        connect: Callable[[], Connection],
        webhooks: Fanout | None = None,
    ) -> None:
        self.service = service
        #: Writes the webhook deliveries of what is published, in the same transaction.
        self.webhooks = webhooks
        self.settings = settings
        self.session_factory = session_factory
        self.outbox = outbox
        self.metrics = metrics
        self.connect = connect
        self.names = Names(settings.bus_namespace)
        self.connected = threading.Event()
        engine: Engine = session_factory.kw["bind"]
        self.postgres = engine.dialect.name == "postgresql"
        self.engine = engine
        self._next_housekeeping = 0.0
        self._claim = self._claim_statement()

    # -- one batch ------------------------------------------------------------
    def relay_once(self, publisher: ConfirmingPublisher | PlainPublisher) -> int:
        """Publish up to one batch; returns how many rows were claimed.

        One statement claims the batch and marks it published, in a transaction
        that commits only once the broker has confirmed every row: a nack puts
        its rows back (attempts + 1) before the commit, a confirm timeout or any
        failure rolls the whole claim back, so an unconfirmed row is never
        marked sent. On PostgreSQL that commit does not wait for the disk
        (``synchronous_commit`` off for this transaction alone): after a
        database crash that lost it, the rows are published again, which the
        consumers' inbox turns into no-ops, as after a relay crash between the
        confirm and the commit. The producers' commits stay synchronous.
        """
        outbox = self.outbox
        now = datetime.now(UTC)
        with self.session_factory() as session, session.begin():
            rows = sorted(session.execute(self._claim, {"now": now}).all(), key=lambda row: row.id)
            if not rows:
                return 0
            exchange = self.names.exchange(self.service)
            batch = [
                Outgoing(
                    key=row.id,
                    exchange=exchange,
                    routing_key=row.event_type,
                    body=row.payload.encode(),
                    message_id=row.event_id,
                )
                for row in rows
            ]
            try:
                result = publisher.publish(batch)
            except ConfirmTimeout:
                self.metrics.publish_failures.labels(self.service, "confirm_timeout").inc(len(batch))
                raise
            if result.confirmed:
                self.metrics.published.labels(self.service).inc(len(result.confirmed))
            if result.returned:
                # Parked, not retried: nobody can receive it until a binding exists.
                session.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(result.returned))
                    .values(last_error="unroutable: returned by the broker")
                )
                self.metrics.returned.labels(self.service).inc(len(result.returned))
            if result.nacked:
                session.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(result.nacked))
                    .values(
                        published_at=None, attempts=outbox.c.attempts + 1, last_error="nacked by the broker"
                    )
                )
                self.metrics.publish_failures.labels(self.service, "nacked").inc(len(result.nacked))
            if self.webhooks is not None:
                # Confirmed or parked as unroutable, the event happened: webhooks get it
                # (a nacked row is published again later, and fanned out then).
                nacked = set(result.nacked)
                published = [row for row in rows if row.id not in nacked]
                # The claim counted the enabled endpoints: none, no query of them at all.
                if rows[0].webhook_endpoints:
                    self.webhooks.write(session, published, now)
        return len(rows)

    def _claim_statement(self) -> Any:
        """``UPDATE outbox SET published_at = :now WHERE id IN (the oldest unsent rows) RETURNING``."""
        outbox = self.outbox
        oldest = (
            select(outbox.c.id)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(self.settings.outbox_batch_size)
        )
        columns: list[Any] = [outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.payload]
        if self.postgres:
            # Relay replicas skip each other's claimed rows instead of waiting for them.
            oldest = oldest.with_for_update(skip_locked=True)
            # Evaluated in the claiming statement, so it costs no round trip of its own.
            columns.append(func.set_config("synchronous_commit", "off", True).label("async_commit"))
        if self.webhooks is not None:
            # Evaluated once per claim (an uncorrelated subquery): the fan-out is skipped
            # without a round trip of its own while nobody subscribes.
            endpoints = self.webhooks.tables.endpoints
            enabled = select(func.count()).select_from(endpoints).where(endpoints.c.enabled.is_(True))
            columns.append(enabled.scalar_subquery().label("webhook_endpoints"))
        return (
            update(outbox)
            .where(outbox.c.id.in_(oldest.scalar_subquery()))
            .values(published_at=bindparam("now"))
            .returning(*columns)
        )

    # -- the loop ---------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        waiter = _Waiter(self.engine, notify_channel(self.service), self._poll_seconds())
        try:
            while not stop.is_set():
                try:
                    with broker_connection(self.connect) as connection:
                        connection.ensure_connection(max_retries=1)
                        buffer_reads(connection)
                        declare_producer(connection.default_channel, self.names, self.service)
                        publisher = make_publisher(connection, self.settings.bus_confirm_timeout)
                        self.connected.set()
                        backoff.reset()
                        log.info("outbox relay connected", extra={"service": self.service})
                        while not stop.is_set():
                            claimed = self.relay_once(publisher)
                            self._housekeeping(connection)
                            if claimed < self.settings.outbox_batch_size:
                                waiter.wait(stop)
                except Exception as exc:  # noqa: BLE001 - any failure: back off and reconnect
                    self.connected.clear()
                    delay = backoff.next()
                    log.warning(
                        "outbox relay interrupted (%s); retrying in %.1fs",
                        describe_error(exc),
                        delay,
                        extra={"service": self.service},
                    )
                    stop.wait(delay)
        finally:
            self.connected.clear()
            waiter.close()

    def _poll_seconds(self) -> float:
        # SQLite has no LISTEN/NOTIFY: poll briefly so the embedded default feels instant.
        return (
            self.settings.outbox_poll_seconds
            if self.postgres
            else min(0.2, self.settings.outbox_poll_seconds)
        )

    def _housekeeping(self, connection: Connection) -> None:
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + 5.0
        # The backlog gauges are not set here: the worker measures them on a timer of its
        # own (bus/backlog.py), so they stay current while this relay has no broker.
        outbox = self.outbox
        with self.session_factory() as session, session.begin():
            cutoff = datetime.now(UTC) - timedelta(hours=self.settings.outbox_retention_hours)
            old = select(outbox.c.id).where(outbox.c.published_at < cutoff).limit(1000).scalar_subquery()
            session.execute(delete(outbox).where(outbox.c.id.in_(old)))
        if connection.transport.driver_type == "amqp":
            _, queue = unrouted(self.names, self.service)
            # Also the idle relay's liveness probe: a connection error here
            # propagates, so a dead broker shows as "disconnected" in /readyz
            # and the relay reconnects before the next event needs it.
            try:
                _, depth, _ = queue(connection.default_channel).queue_declare(passive=True)
                self.metrics.unrouted.labels(self.service).set(depth)
            except connection.channel_errors:
                log.debug("could not read the unrouted queue depth", exc_info=True)


class _Waiter:
    """Sleeps until new outbox rows are committed: PostgreSQL NOTIFY, else a short poll."""

    def __init__(self, engine: Engine, channel: str, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.conn: Any = None
        if engine.dialect.name == "postgresql":
            try:
                import psycopg

                url = engine.url.set(drivername="postgresql")
                self.conn = psycopg.connect(
                    url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
                )
                self.conn.execute(f'LISTEN "{channel}"')
            except Exception as exc:
                log.warning("LISTEN unavailable (%s); polling the outbox", describe_error(exc), exc_info=True)
                self.conn = None

    def wait(self, stop: threading.Event) -> None:
        if self.conn is None:
            stop.wait(self.poll_seconds)
            return
        try:
            for _ in self.conn.notifies(timeout=self.poll_seconds, stop_after=1):
                pass
        except Exception as exc:
            log.warning("LISTEN connection lost (%s); polling the outbox", describe_error(exc), exc_info=True)
            self.close()
            stop.wait(self.poll_seconds)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

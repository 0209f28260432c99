"""Depth and consumers of every queue a service's worker owns, from the broker.

A passive ``queue.declare`` answers (messages ready, consumers) for one queue
without creating or changing it. What it cannot tell: messages delivered to a
consumer and not yet acknowledged are not in its count (only the management API
reports ``messages_unacknowledged``), so a queue whose whole backlog sits in the
consumers' prefetch reads 0 here.

During a broker outage the series are removed, not kept: a depth frozen at its
last value would tell KEDA and the lag alerts that nothing changed, while the
truth is unknown; the worker-down and relay alerts say why, and the absence is
visible to ``absent()``. The worker itself never waits on this thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable

from kombu import Connection

from ..logs import describe_error
from ..metrics import BusMetrics
from .handlers import Handler
from .names import Names

log = logging.getLogger(__name__)


def owned_queues(
    names: Names, service: str, handlers: Iterable[Handler], delays: Iterable[float]
) -> list[tuple[str, str]]:
    """``(queue, kind)`` of every queue the worker of ``service`` declares, kind being
    ``consume``, ``retry``, ``dead`` or ``unrouted`` (its own events nobody takes)."""
    found = []
    for handler in handlers:
        found.append((names.queue(service, handler.name), "consume"))
        for delay in sorted(set(delays)):
            found.append((names.delay_queue(service, handler.name, int(delay * 1000)), "retry"))
    found.append((names.dlq(service), "dead"))
    found.append((names.unrouted_queue(service), "unrouted"))
    return found


class QueueGauges:
    """Sets ``logistics_bus_queue_messages`` and ``logistics_bus_queue_consumers`` per interval."""

    def __init__(
        self,
        *,
        service: str,
        queues: list[tuple[str, str]],
        metrics: BusMetrics,
        connect: Callable[[], Connection],
        interval: float,
    ) -> None:
        self.service = service
        self.queues = queues
        self.metrics = metrics
        self.connect = connect
        self.interval = interval

    def measure(self, connection: Connection) -> None:
        """One passive declare per queue; a queue not declared yet (its consumer never
        started) has no series rather than a 0 it has not earned."""
        for queue, kind in self.queues:
            labels = (self.service, queue, kind)
            # A 404 on a passive declare closes the channel: one channel per queue.
            channel = connection.channel()
            try:
                _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors:
                self._drop(labels)
                continue
            finally:
                # The broker closed it already after a 404.
                with contextlib.suppress(*connection.channel_errors, *connection.connection_errors):
                    channel.close()
            self.metrics.queue_messages.labels(*labels).set(messages)
            self.metrics.queue_consumers.labels(*labels).set(consumers)

    def _drop(self, labels: tuple[str, str, str]) -> None:
        for gauge in (self.metrics.queue_messages, self.metrics.queue_consumers):
            with contextlib.suppress(KeyError):  # never measured
                gauge.remove(*labels)

    def run(self, stop: threading.Event) -> None:
        """Measure every ``interval`` seconds until ``stop``; reconnect after a failure."""
        last_error = ""
        connection: Connection | None = None
        while True:
            try:
                if connection is None:
                    connection = self.connect()
                    connection.ensure_connection(max_retries=1)
                self.measure(connection)
                last_error = ""
            except Exception as exc:  # noqa: BLE001 - keep measuring once the broker is back
                for labels in [(self.service, q, k) for q, k in self.queues]:
                    self._drop(labels)
                if connection is not None:
                    connection.release()
                    connection = None
                error = describe_error(exc)
                if error != last_error:
                    log.warning("queue depths not measured: %s", error, extra={"service": self.service})
                last_error = error
            if stop.wait(self.interval):
                if connection is not None:
                    connection.release()
                return

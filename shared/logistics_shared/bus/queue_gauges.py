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

Where ``LOGISTICS_RABBITMQ_MANAGEMENT_URL`` is set, :class:`ManagementQueueGauges`
adds what only the management API knows, on a thread of its own (a slow or absent
API delays neither the passive declares nor any consumer):
``logistics_bus_queue_messages_ready`` and ``logistics_bus_queue_messages_unacknowledged``
per queue, from ``GET /api/queues/<vhost>/<name>`` with a short timeout. When the API
does not answer, its series are removed (as above), the failure is counted in
``logistics_bus_management_errors_total`` and logged once per change of error. The
API's counts are the broker's statistics, refreshed every few seconds
(``collect_statistics_interval``, 5 s by default), not a live read.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from kombu import Connection
from prometheus_client import Counter, Gauge

from ..logs import describe_error
from ..metrics import BusMetrics
from .handlers import Handler
from .names import Names
from .policy import PolicyError, queue_http, redact

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


#: Where the service's Pyramid registry keeps :class:`QueueStatsMetrics` (one per registry:
#: several workers of one app in a process must not register the same names twice).
STATS_KEY = "logistics.metrics.queue_stats"
#: Seconds one management API request may take: it answers from memory in milliseconds.
MANAGEMENT_TIMEOUT = 3.0


class QueueStatsMetrics:
    """The queue metrics beyond a passive declare's: the management API's counts, its
    errors, and the bound the unrouted policy sets (:mod:`.policy`)."""

    def __init__(self, registry: Any) -> None:
        labels = ["service", "queue", "kind"]
        self.ready = Gauge(
            "logistics_bus_queue_messages_ready",
            "Messages ready for delivery in a queue the worker owns, from the management API.",
            labels,
            registry=registry,
        )
        self.unacknowledged = Gauge(
            "logistics_bus_queue_messages_unacknowledged",
            "Messages delivered to a consumer and not acknowledged yet, from the management API.",
            labels,
            registry=registry,
        )
        self.errors = Counter(
            "logistics_bus_management_errors_total",
            "Management API requests for queue counts that failed (unreachable, refused, timed out).",
            ["service"],
            registry=registry,
        )
        self.max_length = Gauge(
            "logistics_bus_queue_max_length",
            "The max-length the worker's policy gives a queue (the unrouted parking queue: "
            "LOGISTICS_UNROUTED_MAX_LENGTH).",
            labels,
            registry=registry,
        )


def stats_metrics(registry: Any) -> QueueStatsMetrics:
    """The Pyramid registry's :class:`QueueStatsMetrics`, made on first use (in the
    service's metrics registry: the worker's /metrics shows them)."""
    found = registry.get(STATS_KEY)
    if found is None:
        found = registry[STATS_KEY] = QueueStatsMetrics(registry["logistics.metrics"].registry)
    return cast(QueueStatsMetrics, found)


class ManagementQueueGauges:
    """Sets ``..._ready`` and ``..._unacknowledged`` per queue from the management API."""

    def __init__(
        self,
        *,
        service: str,
        queues: list[tuple[str, str]],
        metrics: QueueStatsMetrics,
        management_url: str,
        vhost: str,
        interval: float,
        timeout: float = MANAGEMENT_TIMEOUT,
    ) -> None:
        self.service = service
        self.queues = queues
        self.metrics = metrics
        self.management_url = management_url
        self.vhost = vhost
        self.interval = interval
        self.timeout = timeout

    def measure(self) -> None:
        """One GET per queue. A queue the broker does not know (404), or one it has no
        statistics for yet (just declared), has no series; any other failure raises
        :class:`~.policy.PolicyError` and the caller drops every series."""
        for queue, kind in self.queues:
            labels = (self.service, queue, kind)
            try:
                details = queue_http(self.vhost, queue, self.management_url, timeout=self.timeout)
            except PolicyError as exc:
                if exc.status != 404:
                    raise
                self._drop(labels)
                continue
            ready, unacked = details.get("messages_ready"), details.get("messages_unacknowledged")
            if not isinstance(ready, int) or not isinstance(unacked, int):
                self._drop(labels)
                continue
            self.metrics.ready.labels(*labels).set(ready)
            self.metrics.unacknowledged.labels(*labels).set(unacked)

    def _drop(self, labels: tuple[str, str, str]) -> None:
        for gauge in (self.metrics.ready, self.metrics.unacknowledged):
            with contextlib.suppress(KeyError):  # never measured
                gauge.remove(*labels)

    def run(self, stop: threading.Event) -> None:
        """Measure at once, then every ``interval`` seconds until ``stop``."""
        last_error = ""
        while True:
            try:
                self.measure()
                last_error = ""
            except Exception as exc:  # noqa: BLE001 - keep measuring once the API is back
                self.metrics.errors.labels(self.service).inc()
                for queue, kind in self.queues:
                    self._drop((self.service, queue, kind))
                error = str(exc) if isinstance(exc, PolicyError) else describe_error(exc)
                if error != last_error:
                    log.warning(
                        "queue counts not read from %s: %s",
                        redact(self.management_url),
                        error,
                        extra={"service": self.service},
                    )
                last_error = error
            if stop.wait(self.interval):
                return

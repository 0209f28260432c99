"""A service's worker: the outbox relay, its event consumers, its periodic tasks
and a small health/metrics endpoint — built from the same ``configure()`` as web.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from ..health import health_app
from ..logs import describe_error
from ..service import ServiceSpec
from ..settings import Settings
from ..webhooks.fanout import Fanout
from .backlog import OutboxGauges
from .connection import connection_factory
from .consumer import EventConsumer
from .names import Names
from .policy import PolicyAtStartup, unrouted_policy, vhost_of
from .queue_gauges import ManagementQueueGauges, QueueGauges, owned_queues, stats_metrics
from .relay import OutboxRelay

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        registry: Any,
        *,
        relay: bool = True,
        consumers: int = 1,
        periodic: bool = True,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.registry = registry
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        metrics = registry["logistics.metrics"].bus
        platform = registry["logistics.platform_tables"]
        factory = registry["dbsession_factory"]
        self.relay = (
            OutboxRelay(
                service=spec.name,
                settings=settings,
                session_factory=factory,
                outbox=platform.outbox,
                metrics=metrics,
                connect=connection_factory(settings, heartbeat=False),
                webhooks=Fanout(spec.name, platform.webhooks) if platform.webhooks is not None else None,
            )
            if relay
            else None
        )
        handlers = spec.handlers() if spec.handlers else ()
        # Drain marks only on a real broker. On memory:// (the embedded default) the producer's
        # relay polls SQLite and the in-memory transport polls once a second, so an event can
        # take over a second to arrive: an idle consumer there says nothing about an item created
        # a moment ago. With no marks, readers treat their read model as lagging (accept).
        real_broker = settings.broker_url.startswith(("amqp", "pyamqp"))
        drain = spec.drain_watch() if spec.drain_watch and real_broker else None
        self.consumers = [
            EventConsumer(
                service=spec.name,
                settings=settings,
                session_factory=factory,
                platform=platform,
                handlers=handlers,
                metrics=metrics,
                connect=connection_factory(settings, heartbeat=True),
                drain=drain,
            )
            for _ in range(consumers if handlers else 0)
        ]
        self.periodic = spec.background if periodic else ()
        # From the database, independent of any broker connection (and of --no-relay).
        self.outbox_gauges = OutboxGauges(
            service=spec.name,
            engine=registry.get("dbengine_read") or registry["dbengine"],
            outbox=platform.outbox,
            metrics=metrics,
            interval=settings.outbox_metrics_seconds,
        )
        # Only a real broker answers a passive declare (memory:// has no queues to count).
        self.queue_gauges: QueueGauges | None = None
        self.management_gauges: ManagementQueueGauges | None = None
        self.broker_policy: PolicyAtStartup | None = None
        if settings.broker_url.startswith(("amqp", "pyamqp")):
            names = Names(settings.bus_namespace)
            queues = owned_queues(names, spec.name, handlers, settings.retry_delays)
            self.queue_gauges = QueueGauges(
                service=spec.name,
                queues=queues,
                metrics=metrics,
                connect=connection_factory(settings, heartbeat=False),
                interval=settings.queue_metrics_seconds,
            )
            stats = stats_metrics(registry)
            # The bound the policy gives the parking queue, for LogisticsUnroutedNearMax.
            stats.max_length.labels(spec.name, names.unrouted_queue(spec.name), "unrouted").set(
                settings.unrouted_max_length
            )
            if settings.rabbitmq_management_url:
                self.management_gauges = ManagementQueueGauges(
                    service=spec.name,
                    queues=queues,
                    metrics=stats,
                    management_url=settings.rabbitmq_management_url,
                    vhost=vhost_of(settings.broker_url),
                    interval=settings.queue_metrics_seconds,
                )
                self.broker_policy = PolicyAtStartup(
                    unrouted_policy(settings, spec.name),
                    settings.rabbitmq_management_url,
                    service=spec.name,
                )

    def start(self) -> None:
        self._spawn(f"{self.spec.name}-outbox-metrics", self.outbox_gauges.run, self.stop)
        if self.queue_gauges is not None:
            self._spawn(f"{self.spec.name}-queue-metrics", self.queue_gauges.run, self.stop)
        if self.management_gauges is not None:
            self._spawn(f"{self.spec.name}-queue-counts", self.management_gauges.run, self.stop)
        if self.broker_policy is not None:
            self._spawn(f"{self.spec.name}-broker-policy", self.broker_policy.run, self.stop)
        if self.relay is not None:
            self._spawn(f"{self.spec.name}-relay", self.relay.run, self.stop)
        for index, consumer in enumerate(self.consumers):
            self._spawn(f"{self.spec.name}-consumer-{index}", consumer.run, self.stop)
        for task in self.periodic:
            self._spawn(f"{self.spec.name}-{task.name}", self._periodic, task)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _periodic(self, task: Any) -> None:
        interval = task.interval(self.settings)
        while not self.stop.wait(interval):
            try:
                task.run(self.registry)
            except Exception:
                log.exception("periodic task %s failed", task.name)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop taking work, let in-flight messages and batches finish, then return."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)

    # -- health -----------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        """Ready when the database answers and every relay/consumer holds a broker connection."""
        checks: dict[str, Any] = {}
        ready = True
        try:
            with self.registry["dbengine"].connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            # The body names the class only; the log says what the driver said.
            checks["database"] = f"unreachable ({exc.__class__.__name__})"
            log.warning("readiness: database unreachable: %s", describe_error(exc))
            ready = False
        if self.relay is not None:
            connected = self.relay.connected.is_set()
            checks["relay"] = "connected" if connected else "disconnected"
            ready = ready and connected
        if self.consumers:
            up = sum(c.connected.is_set() for c in self.consumers)
            checks["consumers"] = f"{up}/{len(self.consumers)} connected"
            ready = ready and up == len(self.consumers)
        return {"status": "ready" if ready else "unavailable", **checks}

    def health_app(self) -> Callable[..., Any]:
        return health_app(self.readiness, self.registry["logistics.metrics"].registry)

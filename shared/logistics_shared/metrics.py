"""Prometheus metrics, one registry per service (``up`` runs three in one process)."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .process_metrics import WebProcessSampler, add_default_collectors

BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "logistics_http_requests_total",
            "HTTP requests by route pattern, method and status.",
            ["service", "route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "logistics_http_request_duration_seconds",
            "HTTP request latency by route pattern and method.",
            ["service", "route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        # livesum: under gunicorn the scrape adds up the requests each live worker is
        # handling; a worker that died handles none, so its last value must drop out.
        self.in_flight = Gauge(
            "logistics_http_requests_in_flight",
            "HTTP requests being handled right now (summed over live gunicorn workers).",
            ["service"],
            registry=self.registry,
            multiprocess_mode="livesum",
        ).labels(service)

        self.bus = BusMetrics(service, self.registry)
        self.cache = CacheMetrics(service, self.registry)
        self.db_pool = PoolMetrics(service, self.registry)
        self.rate_limit = RateLimitMetrics(service, self.registry)
        #: Under gunicorn (multiprocess mode) each process samples itself instead.
        self.web_process: WebProcessSampler | None = None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.web_process = WebProcessSampler(service, self.registry)
        else:
            add_default_collectors(self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # labels() hashes and looks up its children on every call; the combinations of
        # route, method and status are few, so keep the children at hand.
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(self.service, route, method, str(status)),
                self.latency.labels(self.service, route, method),
            )
        children[0].inc()
        children[1].observe(seconds)


class BusMetrics:
    """Outbox relay and consumer metrics, in the service's own registry."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.outbox_backlog = Gauge(
            "logistics_outbox_backlog", "Outbox rows not yet published.", ["service"], registry=registry
        )
        self.outbox_oldest_age = Gauge(
            "logistics_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unpublished outbox row.",
            ["service"],
            registry=registry,
        )
        self.published = Counter(
            "logistics_bus_published_total",
            "Events published and confirmed by the broker.",
            ["service"],
            registry=registry,
        )
        self.publish_failures = Counter(
            "logistics_bus_publish_failures_total",
            "Events nacked, unconfirmed in time, or lost with the connection (retried later).",
            ["service", "reason"],
            registry=registry,
        )
        self.returned = Counter(
            "logistics_bus_returned_total",
            "Events the broker could not route (parked, not retried).",
            ["service"],
            registry=registry,
        )
        self.unrouted = Gauge(
            "logistics_bus_unrouted_messages",
            "Events waiting in the producer's alternate-exchange queue: nobody subscribes to them.",
            ["service"],
            registry=registry,
        )
        queue_labels = ["service", "queue", "kind"]
        self.queue_messages = Gauge(
            "logistics_bus_queue_messages",
            "Messages ready in a queue the worker owns (kind: consume, retry, dead, unrouted), "
            "from a passive declare; unacknowledged deliveries are not included.",
            queue_labels,
            registry=registry,
        )
        self.queue_consumers = Gauge(
            "logistics_bus_queue_consumers",
            "Consumers attached to a queue the worker owns, from a passive declare.",
            queue_labels,
            registry=registry,
        )
        labels = ["service", "handler"]
        self.consumed = Counter(
            "logistics_bus_consumed_total", "Events applied by a handler.", labels, registry=registry
        )
        self.duplicates = Counter(
            "logistics_bus_duplicates_total",
            "Redelivered events acked with no effect.",
            labels,
            registry=registry,
        )
        self.retried = Counter(
            "logistics_bus_retried_total",
            "Handler failures sent to a delay queue.",
            labels,
            registry=registry,
        )
        self.dead_lettered = Counter(
            "logistics_bus_dead_lettered_total",
            "Messages sent to the dead-letter queue.",
            [*labels, "reason"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "logistics_bus_handler_duration_seconds",
            "Time to apply one event, commit included.",
            labels,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )


class CacheMetrics:
    """:class:`~logistics_shared.cache.TwoLevelCache` lookups per cache and level.

    A read that misses the local level and is found in Redis counts a ``local`` miss and
    a ``redis`` hit, so each level's hit ratio reads straight from its own two series; a
    level that is switched off (no local TTL, no Redis URL) counts nothing. A Redis read
    that fails counts as a ``redis`` miss (the loader ran) and as an error.
    """

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.requests = Counter(
            "logistics_cache_requests_total",
            "Cache lookups by cache, level (local, redis) and result (hit, miss).",
            ["service", "cache", "level", "result"],
            registry=registry,
        )
        self.errors = Counter(
            "logistics_cache_errors_total",
            "Redis reads, writes or deletes of a cache that failed (the request went on without it).",
            ["service", "cache"],
            registry=registry,
        )


class RateLimitMetrics:
    """The rate limiter (web/ratelimit.py): requests it refused, and requests it let through
    unchecked because its storage (Redis) failed, timed out or was being skipped after a failure.

    Every label is pre-created at 0, so ``rate()`` and alerts see the series before the first
    refusal or outage.
    """

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        from .web.ratelimit_settings import READ, WEBHOOK, WRITE

        self.service = service
        self.limited = Counter(
            "logistics_rate_limited_total",
            "Requests answered 429 by the rate limiter, by route class (read, write, webhook).",
            ["service", "class"],
            registry=registry,
        )
        self.fail_open = Counter(
            "logistics_rate_limit_fail_open_total",
            "Requests let through without a rate-limit check because the limiter's storage (Redis) "
            "failed or timed out, or was skipped for a moment after such a failure.",
            ["service"],
            registry=registry,
        )
        #: class -> its child, built once (labels() costs a lookup on every call).
        self.limited_by_class = {
            klass: self.limited.labels(service, klass) for klass in (READ, WRITE, WEBHOOK)
        }
        self.fail_open_count = self.fail_open.labels(service)


#: Pool checkouts that had to wait rarely wait long: up to the pool timeout (a few seconds).
POOL_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PoolMetrics:
    """SQLAlchemy connection pools, per service and engine (``write``, ``read``): set by the
    pool itself on every checkout and return (see :mod:`logistics_shared.dbpool`).

    The gauges' ``multiprocess_mode`` is ``livesum``: under gunicorn, the connections
    each live process holds add up to what the server holds from PostgreSQL (what
    ``max_connections`` is spent on), and a process that exited closed its connections,
    so its last value must drop out of the sum (``sum`` would keep it; ``all`` adds a
    series per pid, which churns as workers are recycled). Outside multiprocess mode the
    mode is ignored.
    """

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        labels = ["service", "engine"]
        self.checked_out = Gauge(
            "logistics_db_pool_checked_out",
            "Database connections checked out of the pool (in use by a request or task).",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.connections = Gauge(
            "logistics_db_pool_connections",
            "Database connections the pool holds, idle or in use.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.overflow = Gauge(
            "logistics_db_pool_overflow",
            "Connections open beyond the pool size (LOGISTICS_DB_POOL_SIZE), up to LOGISTICS_DB_MAX_OVERFLOW "
            "more.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.wait_seconds = Histogram(
            "logistics_db_pool_wait_seconds",
            "Checkouts that found the pool exhausted (no idle connection, no overflow left) "
            "and how long they waited for a connection to come back.",
            labels,
            buckets=POOL_WAIT_BUCKETS,
            registry=registry,
        )
        self.timeouts = Counter(
            "logistics_db_pool_timeouts_total",
            "Checkouts that gave up after LOGISTICS_DB_CONNECT_TIMEOUT seconds on an exhausted pool.",
            labels,
            registry=registry,
        )

"""The dispatcher's metrics, in the service's registry (names are what alerts, the
dashboard and the dispatcher's autoscaler read: keep them stable)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: An attempt takes from milliseconds to the read timeout.
ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookMetrics:
    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        labels = ["service"]
        self.attempts = Counter(
            "logistics_webhook_attempts_total",
            "Webhook delivery attempts by outcome (delivered, http_error, timeout, connect_error, refused).",
            ["service", "outcome"],
            registry=registry,
        )
        self.deliveries = Counter(
            "logistics_webhook_deliveries_total",
            "Webhook deliveries finished, by outcome (delivered, failed: retries exhausted).",
            ["service", "outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "logistics_webhook_attempt_duration_seconds",
            "Time from connecting to an endpoint to its answer (or the failure).",
            labels,
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        ).labels(service)
        self.due = Gauge(
            "logistics_webhook_due_deliveries",
            "Pending webhook deliveries whose next attempt is due now (the backlog).",
            labels,
            registry=registry,
        ).labels(service)
        self.oldest_due_age = Gauge(
            "logistics_webhook_oldest_due_age_seconds",
            "How long the oldest due webhook delivery has been due (0: none is).",
            labels,
            registry=registry,
        ).labels(service)
        self.in_flight = Gauge(
            "logistics_webhook_in_flight",
            "Webhook deliveries being sent by this dispatcher right now.",
            labels,
            registry=registry,
        ).labels(service)
        self.endpoints_disabled = Gauge(
            "logistics_webhook_endpoints_disabled",
            "Webhook endpoints disabled (by people or for failing), by reason.",
            ["service", "reason"],
            registry=registry,
        )
        self.auto_disabled = Counter(
            "logistics_webhook_endpoints_auto_disabled_total",
            "Webhook endpoints the dispatcher disabled after failing for too long.",
            labels,
            registry=registry,
        ).labels(service)
        self.service = service
        for outcome in ("delivered", "http_error", "timeout", "connect_error", "refused"):
            self.attempts.labels(service, outcome)
        for outcome in ("delivered", "failed"):
            self.deliveries.labels(service, outcome)
        for reason in ("failing", "manual"):
            self.endpoints_disabled.labels(service, reason)

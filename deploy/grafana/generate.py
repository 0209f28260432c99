"""Writes the Grafana dashboards (deploy/grafana/dashboards/*.json) from code.

Deterministic (no timestamps, sorted keys) so that a test can check the committed
JSON is this script's output: ``python deploy/grafana/generate.py``. Every query
uses only metrics the suite exports (and ``up``); a panel that needs cAdvisor or
kube-state-metrics says so with a description starting ``[kubernetes-only]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The uid the provisioned datasource declares (provisioning/datasources/prometheus.yml).
DATASOURCE = {"type": "prometheus", "uid": "logistics-prometheus"}
SERVICES = ("inventory", "shipping", "support")
K8S = "[kubernetes-only] "


class Board:
    def __init__(self, uid: str, title: str) -> None:
        self.uid, self.title = uid, title
        self.panels: list[dict[str, Any]] = []
        self._y = 0
        self._x = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": len(self.panels) + 1,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._x, self._y = 0, self._y + 8

    def panel(self, title: str, exprs: dict[str, str], *, unit: str = "short", description: str = "") -> None:
        if self._x + 8 > 24:
            self._newline()
        self.panels.append(
            {
                "type": "timeseries",
                "title": title,
                "id": len(self.panels) + 1,
                "datasource": DATASOURCE,
                "description": description,
                "gridPos": {"h": 8, "w": 8, "x": self._x, "y": self._y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "expr": expr,
                        "legendFormat": legend,
                        "datasource": DATASOURCE,
                    }
                    for i, (legend, expr) in enumerate(exprs.items())
                ],
            }
        )
        self._x += 8

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "tags": ["logistics"],
            "timezone": "utc",
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "editable": False,
            "panels": self.panels,
            "templating": {"list": []},
            "annotations": {"list": []},
        }


def service_board(service: str) -> Board:
    s = f'service="{service}"'
    board = Board(f"logistics-{service}", f"Logistics / {service}")
    board.row("RED by route")
    board.panel(
        "Request rate by route",
        {"{{route}} {{method}}": f"sum by (route, method) (rate(logistics_http_requests_total{{{s}}}[5m]))"},
        unit="reqps",
    )
    board.panel(
        "5xx ratio by route",
        {
            "{{route}}": f'sum by (route) (rate(logistics_http_requests_total{{{s},status=~"5.."}}[5m]))'
            f" / sum by (route) (rate(logistics_http_requests_total{{{s}}}[5m]))"
        },
        unit="percentunit",
    )
    board.panel(
        "Latency p50 / p95 / p99 by route",
        {
            f"p{q} {{{{route}}}}": f"histogram_quantile(0.{q}, sum by (route, le) "
            f"(rate(logistics_http_request_duration_seconds_bucket{{{s}}}[5m])))"
            for q in ("50", "95", "99")
        },
        unit="s",
    )
    board.row("Saturation")
    board.panel(
        "CPU against limit",
        {
            "{{pod}}": f'sum by (pod) (rate(container_cpu_usage_seconds_total{{pod=~"{service}-.*"}}[5m]))'
            f' / sum by (pod) (kube_pod_container_resource_limits{{resource="cpu",pod=~"{service}-.*"}})'
        },
        unit="percentunit",
        description=K8S + "cAdvisor and kube-state-metrics: CPU used over the container's CPU limit.",
    )
    board.panel(
        "Requests in flight",
        {"in flight": f"sum(logistics_http_requests_in_flight{{{s}}})"},
        description="Summed over web replicas and gunicorn workers.",
    )
    board.panel(
        "DB pool",
        {
            "checked out {{engine}}": f"sum by (engine) (logistics_db_pool_checked_out{{{s}}})",
            "held {{engine}}": f"sum by (engine) (logistics_db_pool_connections{{{s}}})",
            "overflow {{engine}}": f"sum by (engine) (logistics_db_pool_overflow{{{s}}})",
        },
    )
    board.row("Replicas")
    board.panel(
        "Targets up",
        # `up` carries the target labels (app, component), not the service's own `service` label.
        {"{{component}} {{instance}}": f'sum by (component, instance) (up{{app="{service}"}})'},
        description="One series per scraped web or worker process of the service.",
    )
    rate_limit_rows(board, s)
    if service == "support":
        sla_rows(board, s)
    return board


def rate_limit_rows(board: Board, s: str) -> None:
    """The rate limiter (logistics_shared/web/ratelimit.py), in every web process: its counters
    are created at 0 for every class, so the panels show a line before the first 429."""
    board.row("Rate limits")
    board.panel(
        "Rate-limited requests by class",
        {"{{class}}": f"sum by (class) (rate(logistics_rate_limited_total{{{s}}}[5m]))"},
        unit="reqps",
        description="Requests answered 429 by the rate limiter: read, write, webhook (per carrier).",
    )
    board.panel(
        "Share of requests rate-limited",
        {
            "429 share": f"sum(rate(logistics_rate_limited_total{{{s}}}[5m]))"
            f" / sum(rate(logistics_http_requests_total{{{s}}}[5m]))"
        },
        unit="percentunit",
        description="What LogisticsRateLimitedShareHigh watches (over 15 minutes there).",
    )
    board.panel(
        "Rate limiter failing open",
        {"unchecked": f"sum(rate(logistics_rate_limit_fail_open_total{{{s}}}[5m]))"},
        unit="reqps",
        description=(
            "Requests let through unchecked because Redis failed or timed out "
            "(LogisticsRateLimiterFailingOpen): above 0, no limit applies."
        ),
    )


def sla_rows(board: Board, s: str) -> None:
    """Support's SLA, from the tickets table (support.sla_metrics): every worker replica reads
    the same table, so replicas are max'ed, not summed."""
    board.row("SLA")
    board.panel(
        "SLA breached (open tickets past a target)",
        {"{{priority}}": f"max by (priority) (logistics_support_sla_breached{{{s}}})"},
        description="New, open or pending tickets past their first-response or resolution target.",
    )
    board.panel(
        "SLA breaching soon (the last part of a target)",
        {"{{priority}}": f"max by (priority) (logistics_support_sla_breaching_soon{{{s}}})"},
        description=(
            "Open tickets not breached yet in the last part of a target "
            "(LOGISTICS_SLA_BREACHING_SOON_FRACTION of it, the last quarter by default)."
        ),
    )
    board.panel(
        "Open tickets",
        {"{{priority}}": f"max by (priority) (logistics_support_tickets_open{{{s}}})"},
        description="New, open or pending tickets by priority.",
    )


def bus_board() -> Board:
    board = Board("logistics-bus", "Logistics / bus")
    board.row("Outbox")
    board.panel("Outbox backlog", {"{{service}}": "max by (service) (logistics_outbox_backlog)"})
    board.panel(
        "Oldest unsent age",
        {"{{service}}": "max by (service) (logistics_outbox_oldest_unsent_age_seconds)"},
        unit="s",
    )
    board.row("Rates")
    board.panel(
        "Publish / consume / retry / dead-letter",
        {
            "published {{service}}": "sum by (service) (rate(logistics_bus_published_total[5m]))",
            "consumed {{service}}": "sum by (service) (rate(logistics_bus_consumed_total[5m]))",
            "retried {{service}}": "sum by (service) (rate(logistics_bus_retried_total[5m]))",
            "dead-lettered {{service}}": "sum by (service) (rate(logistics_bus_dead_lettered_total[5m]))",
        },
        unit="ops",
    )
    board.panel(
        "Unrouted",
        {
            "returned {{service}}": "sum by (service) (rate(logistics_bus_returned_total[5m]))",
            "parked {{service}}": "max by (service) (logistics_bus_unrouted_messages)",
        },
    )
    board.row("Queues")
    board.panel(
        "Consumer lag (ready messages)",
        {"{{queue}}": 'max by (queue) (logistics_bus_queue_messages{kind="consume"})'},
    )
    board.panel(
        "Retry, DLQ and unrouted depth",
        {"{{kind}} {{queue}}": 'max by (queue, kind) (logistics_bus_queue_messages{kind!="consume"})'},
    )
    board.panel(
        "Handler latency p95",
        {
            "{{handler}}": "histogram_quantile(0.95, sum by (handler, le) "
            "(rate(logistics_bus_handler_duration_seconds_bucket[5m])))"
        },
        unit="s",
    )
    webhook_rows(board)
    return board


def webhook_rows(board: Board) -> None:
    """The webhook dispatchers (shipping, support): deliveries, latency, backlog, in flight and
    disabled endpoints, per service. Backlog, age and disabled counts are read from the database
    by every dispatcher replica (max); counters and in-flight are per process (sum)."""
    board.row("Webhooks")
    board.panel(
        "Webhook deliveries by outcome",
        {
            "{{service}} {{outcome}}": "sum by (service, outcome) "
            "(rate(logistics_webhook_deliveries_total[5m]))",
            "attempts {{service}} {{outcome}}": "sum by (service, outcome) "
            "(rate(logistics_webhook_attempts_total[5m]))",
        },
        unit="ops",
        description="Deliveries finished (delivered, or failed after the last retry); attempts by outcome.",
    )
    board.panel(
        "Webhook attempt latency p50 / p99",
        {
            f"p{q} {{{{service}}}}": f"histogram_quantile(0.{q}, sum by (service, le) "
            "(rate(logistics_webhook_attempt_duration_seconds_bucket[5m])))"
            for q in ("50", "99")
        },
        unit="s",
        description="From connecting to an endpoint to its answer, or the failure.",
    )
    board.panel(
        "Webhook due backlog",
        {"due {{service}}": "max by (service) (logistics_webhook_due_deliveries)"},
        description="Deliveries due now and not yet being sent (what the dispatchers' autoscaler reads).",
    )
    board.panel(
        "Oldest due webhook delivery",
        {"{{service}}": "max by (service) (logistics_webhook_oldest_due_age_seconds)"},
        unit="s",
        description="How long the oldest due delivery has waited (0: none is due).",
    )
    board.panel(
        "Webhook deliveries in flight",
        {"{{service}}": "sum by (service) (logistics_webhook_in_flight)"},
        description="Requests to endpoints open right now, summed over dispatcher replicas.",
    )
    board.panel(
        "Webhook endpoints disabled",
        {"{{service}} {{reason}}": "max by (service, reason) (logistics_webhook_endpoints_disabled)"},
        description="Endpoints off, by reason: failing (the dispatcher disabled them) or manual.",
    )


def boards() -> dict[str, Board]:
    found = {service: service_board(service) for service in SERVICES}
    found["bus"] = bus_board()
    return found


def render(board: Board) -> str:
    return json.dumps(board.json(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    out = HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for name, board in boards().items():
        (out / f"{name}.json").write_text(render(board))


if __name__ == "__main__":
    main()

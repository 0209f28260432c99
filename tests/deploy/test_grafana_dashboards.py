"""The Grafana dashboards: generated, provisioned, and asking only for metrics we export."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from logistics_shared.metrics import ServiceMetrics
from logistics_shared.webhooks.metrics import WebhookMetrics
from support.sla_metrics import SlaMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GRAFANA = DEPLOY / "grafana"


def _generator():
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _panels(board: dict) -> list[dict]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def _registered() -> set[str]:
    """Every sample name the services' registries can export (families and their suffixes)."""
    names = {"up"}
    # A service's own metrics live in the same registry, added by the service (support's SLA).
    own = CollectorRegistry()
    SlaMetrics(own)
    # The webhook dispatcher's metrics, in the registry of a service with webhooks.
    WebhookMetrics("shipping", own)
    for family in [*ServiceMetrics("inventory").registry.collect(), *own.collect()]:
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
        names.update(family.name + suffix for suffix in suffixes)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: label matchers, strings, ranges, grouping
    clauses and function names removed, what is left are selectors."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\b[a-zA-Z_]\w*\s*\(", "(", expr)
    return set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))


def test_committed_json_is_the_generator_output():
    generate = _generator()
    committed = {p.stem: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == {name: generate.render(board) for name, board in generate.boards().items()}


def test_panels_use_the_provisioned_datasource_and_unique_ids():
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uids = {ds["uid"] for ds in provisioned["datasources"]}
    for name, board in _dashboards().items():
        ids = [panel["id"] for panel in _panels(board)]
        assert len(ids) == len(set(ids)), name
        for panel in _panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in uids, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids


def test_every_query_names_a_registered_metric_unless_kubernetes_only():
    registered = _registered()
    for name, board in _dashboards().items():
        for panel in _panels(board):
            if panel["type"] == "row" or panel.get("description", "").startswith("[kubernetes-only]"):
                continue
            for target in panel["targets"]:
                names = metric_names(target["expr"])
                assert names, target["expr"]
                assert names <= registered, (name, panel["title"], names - registered)


def test_the_expression_parser_finds_selectors_only():
    assert metric_names(
        'histogram_quantile(0.95, sum by (route, le) (rate(a_bucket{service="x"}[5m]))) / b'
    ) == {"a_bucket", "b"}


def test_compose_runs_grafana_with_the_provisioning_and_dashboards():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/logistics.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in volumes


def test_the_bus_board_has_a_webhooks_row():
    board = _dashboards()["bus"]
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert "Webhooks" in rows
    start = next(i for i, p in enumerate(board["panels"]) if p["type"] == "row" and p["title"] == "Webhooks")
    following = board["panels"][start + 1 :]
    end = next((i for i, p in enumerate(following) if p["type"] == "row"), len(following))
    exprs = " ".join(t["expr"] for p in following[:end] for t in p["targets"])
    for name in (
        "logistics_webhook_deliveries_total",
        "logistics_webhook_attempt_duration_seconds_bucket",
        "logistics_webhook_due_deliveries",
        "logistics_webhook_oldest_due_age_seconds",
        "logistics_webhook_in_flight",
        "logistics_webhook_endpoints_disabled",
    ):
        assert name in exprs, name


def test_every_service_board_has_a_rate_limits_row():
    for service in ("inventory", "shipping", "support"):
        board = _dashboards()[service]
        start = next(
            (i for i, p in enumerate(board["panels"]) if p["type"] == "row" and p["title"] == "Rate limits"),
            None,
        )
        assert start is not None, service
        following = board["panels"][start + 1 :]
        end = next((i for i, p in enumerate(following) if p["type"] == "row"), len(following))
        exprs = [t["expr"] for p in following[:end] for t in p["targets"]]
        assert any("sum by (class)" in e and "logistics_rate_limited_total" in e for e in exprs), exprs
        assert any("logistics_rate_limit_fail_open_total" in e for e in exprs), exprs
        assert all(f'service="{service}"' in e for e in exprs), exprs

"""The shipped alerting configuration, checked by the real tools: ``promtool check rules`` and
``promtool test rules`` on deploy/prometheus/, ``amtool check-config`` on deploy/alertmanager/;
every alert in alerts.yml has a promtool case expecting it to fire; every alert carries a
severity, a summary, a description and a runbook_url whose section exists in deploy/README.md;
and the Kubernetes PrometheusRule holds exactly alerts.yml's groups (rendered by
deploy/k8s/monitoring/render_rules.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the lock

from ..services import services_required

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts.test.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
MONITORING = ROOT / "deploy" / "k8s" / "monitoring"
README = ROOT / "deploy" / "README.md"

pytestmark = pytest.mark.prometheus


def need_tool(name: str) -> str:
    """The path of Debian's ``promtool`` or ``amtool``: skip without it, or fail under
    LOGISTICS_REQUIRE_SERVICES=1 (as need_balancer() in tests/deploy does)."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
    if found is None:
        packages = "prometheus prometheus-alertmanager"
        message = f"checking the alerting configuration needs {name} (apt-get install {packages})"
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return found


def run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    run(need_tool("promtool"), "check", "rules", str(ALERTS))


def test_promtool_unit_tests_pass() -> None:
    run(need_tool("promtool"), "test", "rules", str(ALERTS_TEST))


def test_amtool_checks_the_alertmanager_config() -> None:
    run(need_tool("amtool"), "check-config", str(ALERTMANAGER))


def test_every_alert_has_a_firing_case() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    missing = sorted({rule["alert"] for rule in alert_rules()} - firing)
    assert not missing, f"alerts with no promtool case expecting them to fire: {missing}"


def test_every_alert_is_labelled_annotated_and_has_a_runbook() -> None:
    readme = README.read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        anchor = name.lower()
        assert annotations.get("runbook_url", "").endswith(f"deploy/README.md#{anchor}"), name
        # GitHub's anchor for a "#### LogisticsFoo" heading is "logisticsfoo".
        assert f"#### {name}\n" in readme, f"deploy/README.md has no runbook section for {name}"


def test_prometheusrule_holds_the_same_groups() -> None:
    spec = importlib.util.spec_from_file_location("render_rules", MONITORING / "render_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (MONITORING / "prometheusrule.yaml").read_text()
    assert committed == module.render(), "re-run deploy/k8s/monitoring/render_rules.py"
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert yaml.safe_load(committed)["spec"]["groups"] == groups


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        pytest.param(
            {"alertname": "LogisticsWebhookBacklogOld", "severity": "warning", "service": "shipping"},
            "tickets",
            id="webhook-warning",
        ),
        # Even a webhook alert marked critical would not page: failing endpoints are mostly the
        # receivers' problem.
        pytest.param(
            {"alertname": "LogisticsWebhookFailureRate", "severity": "critical", "service": "support"},
            "tickets",
            id="webhook-never-pages",
        ),
        pytest.param(
            {
                "alertname": "LogisticsNoDispatcherUp",
                "severity": "critical",
                "app": "shipping",
                "service": "shipping",
            },
            "paging",
            id="no-dispatcher-pages",
        ),
        pytest.param(
            {"alertname": "LogisticsOutboxStalled", "severity": "critical", "service": "inventory"},
            "paging",
            id="critical",
        ),
        pytest.param(
            {"alertname": "LogisticsRateLimitedShareHigh", "severity": "info", "service": "support"},
            "tickets",
            id="info-never-pages",
        ),
    ],
)
def test_alertmanager_routes(labels: dict[str, str], receiver: str) -> None:
    amtool = need_tool("amtool")
    args = [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}"]
    result = subprocess.run(
        [*args, *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver], result.stdout


def test_a_dead_dispatcher_mutes_its_services_webhook_warnings() -> None:
    """LogisticsNoDispatcherUp carries `service` (label_replace of `app`), and an inhibit rule
    mutes the same service's LogisticsWebhook* alerts while it fires."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    rules = [
        r
        for r in config["inhibit_rules"]
        if r.get("source_matchers") == ['alertname="LogisticsNoDispatcherUp"']
    ]
    assert len(rules) == 1, config["inhibit_rules"]
    assert rules[0]["target_matchers"] == ['alertname=~"LogisticsWebhook.+"']
    assert rules[0]["equal"] == ["service"]
    expr = {r["alert"]: r["expr"] for r in alert_rules()}["LogisticsNoDispatcherUp"]
    assert "label_replace(" in expr and '"service"' in expr
    webhook = [r for r in alert_rules() if r["alert"].startswith("LogisticsWebhook")]
    assert len(webhook) == 3
    assert all("service" in r["expr"] for r in webhook)


def test_the_rate_limiter_alerts_watch_its_counters() -> None:
    """One alert per limiter counter (logistics_shared/metrics.py RateLimitMetrics): failing
    open is a warning, a large share of 429s is information; a critical alert mutes both."""
    rules = {r["alert"]: r for r in alert_rules()}
    failing, limited = rules["LogisticsRateLimiterFailingOpen"], rules["LogisticsRateLimitedShareHigh"]
    assert "logistics_rate_limit_fail_open_total" in failing["expr"] and failing["for"]
    assert failing["labels"]["severity"] == "warning"
    assert "logistics_rate_limited_total" in limited["expr"] and limited["for"]
    assert limited["labels"]["severity"] == "info"
    config = yaml.safe_load(ALERTMANAGER.read_text())
    muted = [
        r["target_matchers"]
        for r in config["inhibit_rules"]
        if r["source_matchers"] == ['severity="critical"']
    ]
    assert muted == [['severity=~"warning|info"']]

"""deploy/checks.py crds: KEDA and Prometheus Operator objects against their vendored CRD schemas."""

from __future__ import annotations

import copy
import importlib.util
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_PATH = _ROOT / "deploy" / "checks.py"
_spec = importlib.util.spec_from_file_location("deploy_checks_crds", _PATH)
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules["deploy_checks_crds"] = checks  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(checks)

SHIPPED = [(path, doc) for path, doc in checks.k8s_documents() if checks.is_custom(doc)]


def shipped(kind: str, name: str) -> dict[str, Any]:
    for _, doc in SHIPPED:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return copy.deepcopy(doc)
    raise LookupError(f"{kind}/{name} is not in deploy/k8s")


def test_every_custom_kind_has_a_vendored_schema_file() -> None:
    for name in checks.CRD_KINDS.values():
        assert (checks.CRD_SCHEMAS / name).is_file(), name
        assert name in (checks.CRD_SCHEMAS / "README.md").read_text(), f"{name} has no provenance line"


def test_every_kind_is_shipped() -> None:
    kinds = {doc["kind"] for _, doc in SHIPPED}
    assert kinds == {kind for _, kind in checks.CRD_KINDS}


@pytest.mark.parametrize(
    "doc", [pytest.param(doc, id=f"{path}:{doc['kind']}/{doc['metadata']['name']}") for path, doc in SHIPPED]
)
def test_shipped_object_validates(doc: dict[str, Any]) -> None:
    assert checks.crd_problems(doc) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return apply


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return apply


#: (kind, name of a shipped object, how to break it, what the problem must say).
BROKEN = [
    # unknown (misspelt) fields
    ("ScaledObject", "shipping-worker", _set("spec.minReplicaCont", 1), "spec.minReplicaCont: unknown field"),
    (
        "ScaledObject",
        "shipping-web",
        _set("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilisationWindowSeconds", 60),
        "behavior.scaleDown.stabilisationWindowSeconds: unknown field",
    ),
    (
        "ScaledObject",
        "shipping-worker",
        _set("spec.triggers.0.authenticationRef.namespace", "x"),
        "spec.triggers[0].authenticationRef.namespace: unknown field",
    ),
    ("ScaledObject", "shipping-worker", _set("metricType", "Value"), "metricType: unknown field"),
    (
        "TriggerAuthentication",
        "shipping-worker-broker",
        _set("spec.secretTargetRefs", []),
        "spec.secretTargetRefs: unknown field",
    ),
    (
        "TriggerAuthentication",
        "shipping-worker-broker",
        _set("spec.secretTargetRef.0.optional", True),
        "spec.secretTargetRef[0].optional: unknown field",
    ),
    (
        "PodMonitor",
        "logistics-web",
        _set("spec.podMetricsEndpoints.0.relabelings.0.target_label", "job"),
        "spec.podMetricsEndpoints[0].relabelings[0].target_label: unknown field",
    ),
    ("PodMonitor", "logistics-worker", _set("spec.endpoints", []), "spec.endpoints: unknown field"),
    (
        "PrometheusRule",
        "logistics-alerts",
        _set("spec.groups.0.rules.0.severity", "critical"),
        "spec.groups[0].rules[0].severity: unknown field",
    ),
    # wrong types and values
    (
        "ScaledObject",
        "shipping-worker",
        _set("spec.minReplicaCount", "1"),
        "spec.minReplicaCount: '1' is not of type",
    ),
    (
        "ScaledObject",
        "shipping-worker",
        _set("spec.triggers.0.metadata.value", 100),
        "spec.triggers[0].metadata.value: 100 is not of type 'string'",
    ),
    ("ScaledObject", "shipping-web", _set("spec.triggers", {}), "spec.triggers: {} is not of type 'array'"),
    (
        "PodMonitor",
        "logistics-web",
        _set("spec.podMetricsEndpoints.0.interval", "15 seconds"),
        "spec.podMetricsEndpoints[0].interval: '15 seconds' does not match",
    ),
    (
        "PodMonitor",
        "logistics-web",
        _set("spec.podMetricsEndpoints.0.relabelings.0.action", "rename"),
        "spec.podMetricsEndpoints[0].relabelings[0].action: 'rename' is not one of",
    ),
    (
        "PrometheusRule",
        "logistics-alerts",
        _set("spec.groups.0.rules.0.for", "5 min"),
        "rules[0].for: '5 min'",
    ),
    (
        "PrometheusRule",
        "logistics-alerts",
        _set("spec.groups.0.rules.0.labels.page", True),
        "spec.groups[0].rules[0].labels.page: True is not of type 'string'",
    ),
    # missing required fields
    (
        "ScaledObject",
        "shipping-worker",
        _delete("spec.scaleTargetRef.name"),
        "spec.scaleTargetRef.name: required",
    ),
    ("ScaledObject", "shipping-worker", _delete("spec.triggers"), "spec.triggers: required field missing"),
    (
        "ScaledObject",
        "shipping-worker",
        _delete("spec.triggers.0.type"),
        "spec.triggers[0].type: required field missing",
    ),
    (
        "TriggerAuthentication",
        "shipping-worker-broker",
        _delete("spec.secretTargetRef.0.parameter"),
        "spec.secretTargetRef[0].parameter: required field missing",
    ),
    ("PodMonitor", "logistics-web", _delete("spec.selector"), "spec.selector: required field missing"),
    (
        "PrometheusRule",
        "logistics-alerts",
        _delete("spec.groups.0.rules.0.expr"),
        "spec.groups[0].rules[0].expr: required field missing",
    ),
    ("PrometheusRule", "logistics-alerts", _delete("spec"), "spec: required field missing"),
]


@pytest.mark.parametrize(
    ("kind", "name", "breaks", "expected"),
    [pytest.param(*case, id=f"{case[0]}-{case[3].split(':')[0]}") for case in BROKEN],
)
def test_broken_variant_fails_naming_the_field(
    kind: str, name: str, breaks: Callable[[dict[str, Any]], None], expected: str
) -> None:
    doc = shipped(kind, name)
    breaks(doc)
    problems = checks.crd_problems(doc)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_free_form_maps_stay_open() -> None:
    """Trigger metadata, rule labels and annotations, matchLabels: any key, string values."""
    doc = shipped("ScaledObject", "shipping-worker")
    doc["spec"]["triggers"][0]["metadata"]["anyScalerParameter"] = "x"
    assert checks.crd_problems(doc) == []
    rule = shipped("PrometheusRule", "logistics-alerts")
    rule["spec"]["groups"][0]["rules"][0]["labels"]["team"] = "logistics"
    assert checks.crd_problems(rule) == []


@pytest.mark.parametrize(("strategy", "ok"), [("warn", True), ("ABORT", True), ("", True), ("ignore", False)])
def test_inline_regex_flags_of_the_crd_work(strategy: str, ok: bool) -> None:
    """PrometheusRule's partial_response_strategy pattern is ^(?i)(abort|warn)?$ (Go syntax)."""
    rule = shipped("PrometheusRule", "logistics-alerts")
    rule["spec"]["groups"][0]["partial_response_strategy"] = strategy
    problems = checks.crd_problems(rule)
    assert (problems == []) is ok, problems
    if not ok:
        assert problems[0].startswith("spec.groups[0].partial_response_strategy: 'ignore' does not match")


def test_preserve_unknown_fields_is_left_open() -> None:
    schema = checks.structural(
        {
            "type": "object",
            "properties": {
                "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
                "open": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        }
    )
    assert schema["additionalProperties"] is False
    assert schema["properties"]["closed"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["open"]


def test_unknown_custom_kind_fails() -> None:
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe", "metadata": {"name": "x"}, "spec": {}}
    assert checks.crd_problems(doc) == [
        "monitoring.coreos.com/v1 Probe: no schema vendored in deploy/k8s/crd-schemas (see its README)"
    ]


def test_command_passes_on_the_shipped_manifests() -> None:
    done = subprocess.run([sys.executable, str(_PATH), "crds"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid against the vendored CRD schemas" in done.stdout

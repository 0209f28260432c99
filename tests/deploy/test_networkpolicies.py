"""deploy/checks.py k8s: a pod's egress to Redis exists iff its containers have the Redis Secret."""

from __future__ import annotations

import copy
import importlib.util
import pathlib
import re
import sys
from typing import Any

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_PATH = _ROOT / "deploy" / "checks.py"
_spec = importlib.util.spec_from_file_location("deploy_checks_netpol", _PATH)
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules["deploy_checks_netpol"] = checks  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(checks)

DOCS = list(checks.k8s_documents())
POLICIES = [doc for _, doc in DOCS if doc["kind"] == "NetworkPolicy"]


def workload(name: str) -> dict[str, Any]:
    return next(
        copy.deepcopy(d)
        for _, d in DOCS
        if d["kind"] in {"Deployment", "Job"} and d["metadata"]["name"] == name
    )


def labels_of(name: str) -> dict[str, str]:
    labels: dict[str, str] = workload(name)["spec"]["template"]["metadata"]["labels"]
    return labels


def redis_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    problems = checks.Problems()
    checks.check_redis_egress(problems, checks.Cluster(docs))
    return list(problems)


def test_only_shipping_reads_redis_in_the_code() -> None:
    """The premise of the policy: among the services, only shipping names the Redis URL."""
    users = {
        svc
        for svc in ("inventory", "shipping", "support")
        for f in (_ROOT / "services" / svc / svc).rglob("*.py")
        if re.search(r"redis", f.read_text(), re.IGNORECASE)
    }
    assert users == {"shipping"}


def test_shipped_manifests_agree() -> None:
    assert redis_problems(DOCS) == []


@pytest.mark.parametrize(
    ("name", "reaches"),
    [
        ("shipping-web", True),
        ("shipping-worker", True),
        ("shipping-migrate", False),
        ("inventory-web", False),
        ("inventory-worker", False),
        ("inventory-migrate", False),
        ("support-web", False),
        ("support-worker", False),
    ],
)
def test_who_reaches_redis(name: str, reaches: bool) -> None:
    assert checks.egress_allows(POLICIES, labels_of(name), checks.REDIS_PORT) is reaches
    # Everyone still reaches PostgreSQL.
    assert checks.egress_allows(POLICIES, labels_of(name), 5432)


def _with_policy(extra: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [*DOCS, ("extra.yaml", extra)]


def _policy(selector: dict[str, Any], ports: list[dict[str, Any]] | None) -> dict[str, Any]:
    rule: dict[str, Any] = {} if ports is None else {"ports": ports}
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "extra", "namespace": "logistics"},
        "spec": {"podSelector": selector, "policyTypes": ["Egress"], "egress": [rule]},
    }


@pytest.mark.parametrize(
    ("docs", "failing"),
    [
        pytest.param(
            _with_policy(_policy({"matchLabels": {"app.kubernetes.io/component": "web"}}, [{"port": 6379}])),
            {"inventory-web", "support-web"},
            id="redis-for-every-web",
        ),
        pytest.param(
            _with_policy(_policy({}, None)),
            {"inventory-web", "inventory-worker", "inventory-migrate", "support-web", "support-worker"}
            | {"support-migrate", "shipping-migrate"},
            id="all-ports-for-every-pod",
        ),
        pytest.param(
            _with_policy(
                _policy(
                    {"matchLabels": {"app.kubernetes.io/name": "support"}}, [{"port": 6000, "endPort": 6400}]
                )
            ),
            {"support-web", "support-worker", "support-migrate"},
            id="port-range",
        ),
        pytest.param(
            [
                (p, d)
                for p, d in DOCS
                if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "redis")
            ],
            {"shipping-web", "shipping-worker"},
            id="redis-policy-missing",
        ),
        pytest.param(
            _with_policy(_policy({}, [{"protocol": "UDP", "port": 6379}])),
            set(),
            id="udp-is-not-redis",
        ),
    ],
)
def test_disagreement_fails_naming_the_workload(
    docs: list[tuple[str, dict[str, Any]]], failing: set[str]
) -> None:
    problems = redis_problems(docs)
    named = {m.group(1) for p in problems if (m := re.search(r"(?:Deployment|Job)/(\S+):", p))}
    assert named == failing, problems


def test_a_pod_given_the_redis_secret_without_egress_fails() -> None:
    web = workload("inventory-web")
    web["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {
            "name": "LOGISTICS_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "logistics-redis", "key": "LOGISTICS_REDIS_URL"}},
        }
    )
    docs = [(p, d) for p, d in DOCS if d["metadata"]["name"] != "inventory-web" or d["kind"] != "Deployment"]
    problems = redis_problems([*docs, ("deploy/k8s/inventory/web.yaml", web)])
    assert problems == [
        "deploy/k8s/inventory/web.yaml: Deployment/inventory-web: egress to Redis (:6379) is denied but its"
        " containers get Secret logistics-redis"
    ]


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_selector_matches(selector: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert checks.selector_matches(selector, labels) is matches

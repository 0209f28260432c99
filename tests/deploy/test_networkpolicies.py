"""deploy/checks.py k8s: a pod's egress to Redis exists iff its containers have the Redis Secret
(every web pod: the rate limiter; shipping's worker: its tracking cache);
a webhook dispatcher reaches only DNS, its database and public addresses on 443, and only
Prometheus reaches it."""

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


def test_every_web_app_runs_the_rate_limiter() -> None:
    """The premise of policy "redis": the shared app every service's web builds includes the
    limiter, which counts in LOGISTICS_REDIS_URL's Redis when it is set."""
    app = (_ROOT / "shared" / "logistics_shared" / "app.py").read_text()
    assert re.search(r'config\.include\("logistics_shared\.web\.ratelimit"\)', app)
    config = (_ROOT / "shared" / "logistics_shared" / "web" / "ratelimit_settings.py").read_text()
    assert "settings.rate_limit_storage_url or settings.redis_url" in config


def test_only_shipping_reads_redis_in_the_code() -> None:
    """The premise of policy "redis-shipping-worker": among the services, only shipping names
    Redis (its tracking cache, which its worker's handlers invalidate)."""
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
        ("inventory-web", True),
        ("inventory-worker", False),
        ("inventory-migrate", False),
        ("support-web", True),
        ("support-worker", False),
        ("shipping-dispatcher", False),
        ("support-dispatcher", False),
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
            _with_policy(
                _policy({"matchLabels": {"app.kubernetes.io/component": "worker"}}, [{"port": 6379}])
            ),
            {"inventory-worker", "support-worker"},
            id="redis-for-every-worker",
        ),
        pytest.param(
            _with_policy(_policy({}, None)),
            {"inventory-worker", "inventory-migrate", "support-worker"}
            | {"support-migrate", "shipping-migrate", "shipping-dispatcher", "support-dispatcher"},
            id="all-ports-for-every-pod",
        ),
        pytest.param(
            _with_policy(
                _policy(
                    {"matchLabels": {"app.kubernetes.io/name": "support"}}, [{"port": 6000, "endPort": 6400}]
                )
            ),
            {"support-worker", "support-migrate", "support-dispatcher"},
            id="port-range",
        ),
        pytest.param(
            [
                (p, d)
                for p, d in DOCS
                if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "redis")
            ],
            {"inventory-web", "shipping-web", "support-web"},
            id="redis-policy-missing",
        ),
        pytest.param(
            [
                (p, d)
                for p, d in DOCS
                if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "redis-shipping-worker")
            ],
            {"shipping-worker"},
            id="worker-policy-missing",
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
    worker = workload("inventory-worker")
    worker["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {
            "name": "LOGISTICS_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "logistics-redis", "key": "LOGISTICS_REDIS_URL"}},
        }
    )
    docs = [
        (p, d) for p, d in DOCS if d["metadata"]["name"] != "inventory-worker" or d["kind"] != "Deployment"
    ]
    problems = redis_problems([*docs, ("deploy/k8s/inventory/worker.yaml", worker)])
    assert problems == [
        "deploy/k8s/inventory/worker.yaml: Deployment/inventory-worker: egress to Redis (:6379) is denied but"
        " its containers get Secret logistics-redis"
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


# --- webhook dispatchers ----------------------------------------------------------------------
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]


def dispatcher_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    problems = checks.Problems()
    checks.check_dispatcher_network(problems, checks.Cluster(docs))
    return list(problems)


def _replace_policy(name: str, policy: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    docs = [(p, d) for p, d in DOCS if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name)]
    return docs if policy is None else [*docs, ("deploy/k8s/networkpolicies.yaml", policy)]


def _shipped(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in POLICIES if d["metadata"]["name"] == name))


def test_shipped_dispatchers_reach_only_dns_their_database_and_public_https() -> None:
    assert {d["metadata"]["name"] for _, d in DOCS if d["kind"] == "Deployment"} >= {
        "shipping-dispatcher",
        "support-dispatcher",
    }
    assert dispatcher_problems(DOCS) == []
    for name in ("shipping-dispatcher", "support-dispatcher"):
        labels = labels_of(name)
        assert checks.egress_allows(POLICIES, labels, 443)
        assert checks.egress_allows(POLICIES, labels, 5432)
        for port in (5672, 6379, 15672, 80, 8080):
            assert not checks.egress_allows(POLICIES, labels, port), (name, port)


def _egress_variant(change: Any) -> list[tuple[str, dict[str, Any]]]:
    policy = _shipped("dispatcher")
    change(policy["spec"]["egress"])
    return _replace_policy("dispatcher", policy)


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        pytest.param(
            _replace_policy("dispatcher", None), "no NetworkPolicy lets it out to 443", id="policy-missing"
        ),
        pytest.param(
            _egress_variant(lambda egress: egress[1]["to"][0]["ipBlock"]["except"].remove("169.254.0.0/16")),
            "egress[1] lets it out to [443]",
            id="metadata-range-not-excepted",
        ),
        pytest.param(
            _egress_variant(lambda egress: egress[1].pop("to")),
            "egress[1] lets it out to [443] of anywhere",
            id="https-anywhere",
        ),
        pytest.param(
            _egress_variant(lambda egress: egress[1]["ports"].append({"protocol": "TCP", "port": 6379})),
            "egress[1] lets it out to [443, 6379]",
            id="redis-to-the-internet",
        ),
        pytest.param(
            _egress_variant(lambda egress: egress.append({"ports": [{"protocol": "TCP", "port": 5672}]})),
            "egress[2] lets it out to [5672]",
            id="broker",
        ),
        pytest.param(
            _with_policy(_policy({"matchLabels": {"app.kubernetes.io/name": "support"}}, None)),
            "NetworkPolicy extra egress[0] lets it out to every port",
            id="another-policy-opens-everything",
        ),
    ],
)
def test_a_dispatcher_let_out_elsewhere_fails(docs: list[tuple[str, dict[str, Any]]], expected: str) -> None:
    problems = dispatcher_problems(docs)
    assert problems, "no problem found"
    assert all("Deployment/" in p and "-dispatcher" in p for p in problems), problems
    assert any(expected in p for p in problems), problems


def test_a_dispatcher_open_to_more_than_prometheus_fails() -> None:
    policy = _shipped("dispatcher")
    policy["spec"]["ingress"][0]["from"].append(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    )
    problems = dispatcher_problems(_replace_policy("dispatcher", policy))
    assert len(problems) == 2, problems  # shipping's and support's
    assert all("ingress[0] admits" in p for p in problems), problems


def test_the_shipped_rule_excepts_the_private_ranges() -> None:
    rule = _shipped("dispatcher")["spec"]["egress"][1]
    assert rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}]

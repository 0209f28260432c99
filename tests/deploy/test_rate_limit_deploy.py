"""The rate limiter as deployed: every web replica counts in Redis (one budget per caller across
replicas) and believes X-Forwarded-For from the balancers only, in compose, on Kubernetes and
in the local cluster; deploy/checks.py fails when one of them does not."""

from __future__ import annotations

import copy
import importlib.util
import os
import pathlib
import sys
from typing import Any

import pytest

from logistics_shared.web.ratelimit import ClientAddress

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("deploy_checks_ratelimit", _ROOT / "deploy" / "checks.py")
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules["deploy_checks_ratelimit"] = checks  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(checks)

_cluster_spec = importlib.util.spec_from_file_location(
    "local_cluster_ratelimit", _ROOT / "deploy" / "local" / "cluster.py"
)
assert _cluster_spec and _cluster_spec.loader
local_cluster = importlib.util.module_from_spec(_cluster_spec)
_cluster_spec.loader.exec_module(local_cluster)

DOCS = list(checks.k8s_documents())
FORWARDED = "LOGISTICS_WEB_FORWARDED_ALLOW_IPS"


def compose_problems(compose: Any) -> list[str]:
    problems = checks.Problems()
    checks.check_compose_forwarded(problems, compose)
    return list(problems)


def k8s_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    problems = checks.Problems()
    checks.check_web_rate_limits(problems, checks.Cluster(docs))
    return list(problems)


def with_web_env(compose: Any, name: str, **env: str | None) -> Any:
    services = copy.deepcopy(compose.services)
    current = checks.environment_dict(services[name]["environment"])
    for key, value in env.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    services[name]["environment"] = current
    return checks.Compose(services, compose.nginx, compose.haproxy, compose.prometheus)


# --- compose ------------------------------------------------------------------------------------
def test_the_shipped_compose_file_passes() -> None:
    assert compose_problems(checks.Compose.read()) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({FORWARDED: None}, "LOGISTICS_WEB_FORWARDED_ALLOW_IPS is None", id="unset"),
        pytest.param({FORWARDED: "*"}, "LOGISTICS_WEB_FORWARDED_ALLOW_IPS is '*'", id="everyone"),
        pytest.param({FORWARDED: "172.30.56.10"}, "does not trust haproxy (172.30.56.11)", id="nginx-only"),
        pytest.param({FORWARDED: "172.30.56.0/24"}, "trusts whole networks", id="the-gateway-too"),
        pytest.param({"LOGISTICS_REDIS_URL": None}, "no LOGISTICS_REDIS_URL", id="no-redis"),
    ],
)
def test_a_web_replica_that_misreads_addresses_or_counts_alone_fails(
    env: dict[str, str | None], message: str
) -> None:
    problems = compose_problems(with_web_env(checks.Compose.read(), "support-web", **env))
    assert len(problems) == 1 and problems[0].startswith("compose support-web: "), problems
    assert message in problems[0]


def test_a_balancer_without_a_fixed_address_fails() -> None:
    compose = checks.Compose.read()
    services = copy.deepcopy(compose.services)
    del services["haproxy"]["networks"]
    problems = compose_problems(checks.Compose(services, compose.nginx, compose.haproxy, compose.prometheus))
    assert problems == ["compose haproxy: no fixed ipv4_address on the default network"]


def test_the_compose_value_counts_the_client_the_balancer_saw() -> None:
    """What the web does with compose's value (the limiter's own ClientAddress): the address
    nginx appended, never one a client wrote; a peer that is not a balancer (the network's
    gateway, a published port's client) is counted as itself."""
    compose = checks.Compose.read()
    trusted = checks.environment_dict(compose.services["inventory-web"]["environment"])[FORWARDED]
    nginx = checks.balancer_address(compose.services["nginx"])
    client = ClientAddress(trusted)
    assert (
        client({"REMOTE_ADDR": nginx, "HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.9"}) == "203.0.113.9"
    )
    assert client({"REMOTE_ADDR": "172.30.56.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}) == "172.30.56.1"


# --- Kubernetes ---------------------------------------------------------------------------------
def test_the_shipped_manifests_pass() -> None:
    assert k8s_problems(DOCS) == []


def _without_redis(name: str) -> list[tuple[str, dict[str, Any]]]:
    docs = copy.deepcopy(DOCS)
    for _, doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container["env"] = [e for e in container.get("env", []) if e["name"] != "LOGISTICS_REDIS_URL"]
    return docs


@pytest.mark.parametrize("name", ["inventory-web", "shipping-web", "support-web"])
def test_a_web_deployment_without_redis_fails(name: str) -> None:
    problems = k8s_problems(_without_redis(name))
    assert len(problems) == 1 and f"Deployment/{name}: no LOGISTICS_REDIS_URL" in problems[0], problems


def test_a_worker_without_redis_is_fine() -> None:
    assert k8s_problems(_without_redis("shipping-worker")) == []


@pytest.mark.parametrize("value", [None, "*", "10.0.0.0/33", ""])
def test_the_configmap_must_name_the_ingress_addresses(value: str | None) -> None:
    docs = copy.deepcopy(DOCS)
    for _, doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "logistics-config":
            if value is None:
                del doc["data"][FORWARDED]
            else:
                doc["data"][FORWARDED] = value
    problems = k8s_problems(docs)
    assert len(problems) == 1 and problems[0].startswith(f"ConfigMap logistics-config: {FORWARDED} is"), (
        problems
    )


# --- the local cluster (make cluster, the cluster tests) ------------------------------------------
def test_the_local_cluster_counts_in_the_machines_redis_under_its_own_prefix(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("LOGISTICS_")]:
        monkeypatch.delenv(key)
    env = local_cluster.environment(local_cluster.Layout({}), tmp_path)
    assert env["LOGISTICS_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert env["LOGISTICS_RATE_LIMIT_KEY_PREFIX"] == "cluster-ratelimit"
    assert env[FORWARDED] == "127.0.0.1"
    assert "LOGISTICS_RATE_LIMITS_ENABLED" not in env  # on, as the settings default it

    # A test cluster (tests/helpers/cluster.py: its own namespace, the limiter switched off
    # for the load tests) keeps both, and gets keys of its own.
    monkeypatch.setenv("LOGISTICS_BUS_NAMESPACE", "lt_cl_1234abcd")
    monkeypatch.setenv("LOGISTICS_RATE_LIMITS_ENABLED", "false")
    env = local_cluster.environment(local_cluster.Layout({}), tmp_path)
    assert env["LOGISTICS_RATE_LIMIT_KEY_PREFIX"] == "lt_cl_1234abcd-ratelimit"
    assert env["LOGISTICS_RATE_LIMITS_ENABLED"] == "false"

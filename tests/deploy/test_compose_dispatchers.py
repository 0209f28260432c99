"""deploy/checks.py compose: the webhook dispatchers of shipping and support in
docker-compose.yml (command, health port, only their database URL and secrets key), and who
gets LOGISTICS_SECRETS_KEY; deploy/checks.py k8s: no container replaces tini."""

from __future__ import annotations

import copy
import importlib.util
import pathlib
import sys
from typing import Any

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("deploy_checks_compose", _ROOT / "deploy" / "checks.py")
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules["deploy_checks_compose"] = checks  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(checks)

SHIPPED = checks.Compose.read()


def compose_problems(services: dict[str, Any]) -> list[str]:
    compose = checks.Compose(services=services, nginx="", haproxy="", prometheus={})
    problems = checks.Problems()
    for svc in checks.services():
        checks.check_compose_databases(problems, compose, svc)
        checks.check_compose_commands(problems, compose, svc)
        checks.check_compose_ports(problems, compose, svc)
        checks.check_compose_secrets_key(problems, compose, svc)
    return list(problems)


def variant(change: Any) -> dict[str, Any]:
    services = copy.deepcopy(SHIPPED.services)
    change(services)
    return services


def test_shipped_compose_passes() -> None:
    assert compose_problems(SHIPPED.services) == []
    for svc, port in (("shipping", 6742), ("support", 6743)):
        dispatcher = SHIPPED.services[f"{svc}-dispatcher"]
        assert dispatcher["command"] == ["logistics", "dispatcher", svc, "--health-host", "0.0.0.0"]
        assert port in SHIPPED.exposed(f"{svc}-dispatcher")
    assert "inventory-dispatcher" not in SHIPPED.services


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda s: s.pop("support-dispatcher"),
            "compose: service support-dispatcher is missing",
            id="missing",
        ),
        pytest.param(
            lambda s: s["shipping-dispatcher"].update(command=["logistics", "worker", "shipping"]),
            "compose shipping-dispatcher: command",
            id="wrong-command",
        ),
        pytest.param(
            lambda s: s["shipping-dispatcher"].update(expose=["6642"]),
            "compose shipping-dispatcher: does not expose 6742",
            id="wrong-port",
        ),
        pytest.param(
            lambda s: s["shipping-dispatcher"]["environment"].update(LOGISTICS_BROKER_URL="amqp://x"),
            "compose shipping-dispatcher: needs its database URL and secrets key only, also gets"
            " ['LOGISTICS_BROKER_URL']",
            id="dispatcher-with-broker",
        ),
        pytest.param(
            lambda s: s["support-dispatcher"]["environment"].pop("LOGISTICS_SECRETS_KEY"),
            "compose support-dispatcher: LOGISTICS_SECRETS_KEY not set",
            id="dispatcher-without-key",
        ),
        pytest.param(
            lambda s: s["shipping-web"]["environment"].pop("LOGISTICS_SECRETS_KEY"),
            "compose shipping-web: LOGISTICS_SECRETS_KEY not set",
            id="web-without-key",
        ),
        pytest.param(
            lambda s: s["support-worker"].update(
                environment={
                    **checks.environment_dict(s["support-worker"]["environment"]),
                    "LOGISTICS_SECRETS_KEY": "k",
                }
            ),
            "compose support-worker: gets LOGISTICS_SECRETS_KEY, which it never reads",
            id="worker-with-key",
        ),
        pytest.param(
            lambda s: s.update(
                {
                    "inventory-dispatcher": {
                        **s["shipping-dispatcher"],
                        "command": ["logistics", "dispatcher", "inventory"],
                    }
                }
            ),
            "compose: inventory has no webhooks but a dispatcher",
            id="inventory-dispatcher",
        ),
    ],
)
def test_a_broken_dispatcher_or_key_fails(change: Any, expected: str) -> None:
    problems = compose_problems(variant(change))
    assert any(expected in p for p in problems), problems


def test_a_container_replacing_tini_fails() -> None:
    docs = []
    for path, doc in checks.k8s_documents():
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "support-dispatcher":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["command"] = container.pop("args")
        docs.append((path, doc))
    problems = checks.Problems()
    cluster = checks.Cluster(docs)
    for path, doc in cluster.of_kind("Deployment"):
        checks.check_workload(problems, cluster, path, doc)
    assert [p for p in problems if "replaces the image's entry point" in p] == [
        "deploy/k8s/support/dispatcher.yaml: Deployment/support-dispatcher container dispatcher: sets"
        " command, which replaces the image's entry point (tini); use args"
    ], list(problems)

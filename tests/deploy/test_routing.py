"""The front doors route each service's outbound webhook API (/v1/<svc>/webhook-endpoints...,
/v1/<svc>/webhook-event-types) to that service, and deploy/checks.py compose fails when they
do not."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("deploy_checks_routing", _ROOT / "deploy" / "checks.py")
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules["deploy_checks_routing"] = checks  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(checks)

WEBHOOK_SERVICES = ("shipping", "support")


def concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "0b8f6a52-37c2-4a5e-9d7e-1f0e2a3b4c5d", path)


def test_the_webhook_paths_come_from_the_shared_routes() -> None:
    for svc in WEBHOOK_SERVICES:
        paths = checks.webhook_paths(svc)
        assert f"/v1/{svc}/webhook-endpoints" in paths
        assert f"/v1/{svc}/webhook-event-types" in paths
        assert all(p.startswith(f"/v1/{svc}/") for p in paths), paths
    served = checks.served_prefixes()
    assert {svc for svc in WEBHOOK_SERVICES if svc in served.get(svc, set())} == set(WEBHOOK_SERVICES)
    assert "inventory" not in served.get("inventory", set())


def _location_patterns(text: str, balancer: str) -> dict[str, re.Pattern[str]]:
    if balancer == "nginx":
        found = re.findall(r"location ~ (\^/v1/\S+) \{\s*proxy_pass http://(\w+);", text)
        return {svc: re.compile(rx) for rx, svc in found}
    found = re.findall(r"acl is_(\w+)\s+path_reg (\^/v1/\S+)", text)
    return {svc: re.compile(rx) for svc, rx in found}


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_every_webhook_path_reaches_its_service_only(balancer: str) -> None:
    compose = checks.Compose.read()
    assert not compose.render_errors
    patterns = _location_patterns(getattr(compose, balancer), balancer)
    assert set(patterns) == {"inventory", "shipping", "support"}
    for svc in WEBHOOK_SERVICES:
        for path in checks.webhook_paths(svc):
            matching = {name for name, rx in patterns.items() if rx.match(concrete(path))}
            assert matching == {svc}, (balancer, path, matching)


def test_the_ingress_routes_the_webhook_prefixes() -> None:
    routes = checks.ingress_routes([doc for _, doc in checks.k8s_documents()])
    for svc in WEBHOOK_SERVICES:
        assert svc in routes[svc]
        assert not any(svc in prefixes for other, prefixes in routes.items() if other != svc)


@pytest.mark.parametrize(
    ("nginx", "message"),
    [
        pytest.param(
            {"inventory": {"items"}, "shipping": {"shipments"}, "support": {"tickets", "shipping"}},
            "shipping serves /v1/shipping but nginx does not route it there",
            id="shipping-webhooks-routed-to-support",
        ),
        pytest.param(
            {"inventory": {"items"}, "shipping": {"shipments", "shipping"}, "support": {"tickets"}},
            "support serves /v1/support but nginx does not route it there",
            id="support-webhooks-not-routed",
        ),
    ],
)
def test_webhook_paths_routed_elsewhere_fail(nginx: dict[str, set[str]], message: str) -> None:
    problems = checks.Problems()
    checks.check_served_prefixes_routed(problems, nginx)
    assert message in problems, problems


def test_shipped_routing_passes() -> None:
    problems = checks.Problems()
    compose = checks.Compose.read()
    checks.check_served_prefixes_routed(problems, checks.nginx_routes(compose.nginx))
    assert list(problems) == []

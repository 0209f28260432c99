"""The connection budget of deploy/checks.py: worst case per database server."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "checks.py"
_spec = importlib.util.spec_from_file_location("deploy_checks", _PATH)
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules["deploy_checks"] = checks  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(checks)


def row(server: str, replicas: int, processes: int = 1, per_process: int = 10) -> object:
    return checks.BudgetRow(server, f"w{replicas}", replicas, processes, per_process)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([row("a", 3), row("a", 4)], {}, id="fits"),
        pytest.param([row("a", 8)], {}, id="exactly-at-limit-minus-reserve"),
        pytest.param([row("a", 8), row("a", 1, per_process=1)], {"a": 81}, id="one-over"),
        pytest.param([row("a", 5), row("b", 5)], {}, id="two-servers-each-fits"),
        pytest.param([row("a", 5, processes=2)], {"a": 100}, id="processes-multiply"),
        pytest.param([], {}, id="empty"),
    ],
)
def test_budget_overruns(rows: list[object], expected: dict[str, int]) -> None:
    assert checks.budget_overruns(rows, limit=100, reserve=20) == expected


def test_shipped_manifests_fit() -> None:
    cluster = checks.Cluster(list(checks.k8s_documents()))
    assert (
        checks.budget_overruns(
            checks.budget_rows(cluster), checks.POSTGRES_MAX_CONNECTIONS, checks.POSTGRES_RESERVE
        )
        == {}
    )


def test_a_web_process_counts_both_engines_and_a_worker_its_listen_connection() -> None:
    """Per process: web 2 x (pool + overflow) (write and read engines), worker pool + overflow + 1."""
    cluster = checks.Cluster(list(checks.k8s_documents()))
    data: dict[str, str] = {}
    for _, c in cluster.of_kind("ConfigMap"):
        data |= c.get("data", {})
    per_pool = int(data["LOGISTICS_DB_POOL_SIZE"]) + int(data["LOGISTICS_DB_MAX_OVERFLOW"])
    rows = {r.workload: r for r in checks.budget_rows(cluster)}
    for svc in ("inventory", "shipping", "support"):
        assert rows[f"{svc}-web"].per_process == 2 * per_pool
        assert rows[f"{svc}-worker"].per_process == per_pool + 1
    # And the shipped pool serves every web thread from either engine without waiting.
    assert per_pool >= int(data["LOGISTICS_WEB_THREADS"])


def test_a_dispatcher_counts_its_own_pool_and_its_listen_connection() -> None:
    """The webhook dispatchers (shipping, support) are in the budget: max replicas x (the pool
    and overflow their container sets, over the ConfigMap's) + 1 LISTEN connection."""
    cluster = checks.Cluster(list(checks.k8s_documents()))
    rows = {r.workload: r for r in checks.budget_rows(cluster)}
    assert "inventory-dispatcher" not in rows
    for svc in ("shipping", "support"):
        deployment = cluster.deployments[f"{svc}-dispatcher"]
        env = {
            e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        pool = int(env["LOGISTICS_DB_POOL_SIZE"]) + int(env["LOGISTICS_DB_MAX_OVERFLOW"])
        row = rows[f"{svc}-dispatcher"]
        assert row.per_process == pool + 1
        scaler = next(
            so for _, so in cluster.of_kind("ScaledObject") if so["metadata"]["name"] == f"{svc}-dispatcher"
        )
        assert row.replicas == scaler["spec"]["maxReplicaCount"]


def test_a_dispatcher_scaled_past_the_budget_fails() -> None:
    docs = []
    for path, doc in checks.k8s_documents():
        if doc["kind"] == "ScaledObject" and doc["metadata"]["name"] == "shipping-dispatcher":
            doc["spec"]["maxReplicaCount"] = 10
        docs.append((path, doc))
    problems = checks.Problems()
    checks.check_connection_budget(problems, checks.Cluster(docs))
    assert len(problems) == 1, problems
    assert "shipping-dispatcher 30" in problems[0], problems

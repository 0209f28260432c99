"""bench/kit/autoscale.py, the decisions of bench/scaling_sim.py: the HPA's formula, tolerance,
stabilisation windows and scaling policies, KEDA's activation and cooldown, min and max, on
synthetic metric series with their exact answers; and the reading of deploy/k8s/'s autoscalers.

The module is loaded from its file alone (it imports nothing of the bench kit), so importing it
neither starts anything nor puts bench/ on sys.path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_kit_autoscale", ROOT / "bench" / "kit" / "autoscale.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


A = _load()

IN_FLIGHT = A.Trigger("in-flight", "AverageValue", 6.0, type="prometheus")
CPU = A.Trigger("cpu", "Utilization", 70.0, type="cpu")
QUEUE = A.Trigger("queue", "AverageValue", 100.0, type="rabbitmq", queue="logistics.x.y")
QUEUE_ACTIVATION = A.Trigger("queue", "AverageValue", 100.0, type="rabbitmq", queue="q", activation=10.0)
AGE = A.Trigger("age", "AverageValue", 30.0, type="prometheus")

#: The web ScaledObjects' shape: min 2, max 10, scale down after 300 s by 1 pod a minute.
WEB = A.Scaler(
    name="web",
    deployment="svc-web",
    kind="ScaledObject",
    min_replicas=2,
    max_replicas=10,
    triggers=(CPU, IN_FLIGHT),
    down=A.Rules(300.0, (A.Policy("Pods", 1, 60.0),)),
    cpu_request=0.5,
    cpu_limit=1.0,
)
#: The worker ScaledObjects' shape: min 1, max 4, KEDA's cooldown, the HPA's default behaviour.
WORKER = A.Scaler(
    name="worker",
    deployment="svc-worker",
    kind="ScaledObject",
    min_replicas=1,
    max_replicas=4,
    triggers=(QUEUE, AGE),
    cooldown=300.0,
)


def series(
    scaler: object, values: Sequence[tuple[float, Mapping[str, float | None]]], start: int | None = None
) -> list:
    auto = A.Autoscaler(scaler, start)
    return [auto.decide(t, v) for t, v in values]


# -- one metric: the formula and the tolerance ------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "value", "current", "expected"),
    [
        # AverageValue: ceil(metric / target) once outside the tolerance
        (IN_FLIGHT, 30.0, 2, 5),  # ratio 30 / 12 = 2.5
        (IN_FLIGHT, 13.0, 2, 2),  # ratio 1.083: within 0.1
        (IN_FLIGHT, 13.3, 2, 3),  # ratio 1.108: outside -> ceil(2.217)
        (IN_FLIGHT, 22.0, 4, 4),  # ratio 0.917: within
        (IN_FLIGHT, 21.0, 4, 4),  # ratio 0.875 -> ceil(3.5) = 4
        (IN_FLIGHT, 17.0, 4, 3),  # ratio 0.708 -> ceil(2.83) = 3
        (IN_FLIGHT, 0.0, 4, 0),  # nothing in flight: as low as the HPA may go
        # Utilization: whole percent of the request per pod, ceil(ratio * current)
        (CPU, 1.5, 2, 5),  # 0.75 cores a pod = 150% of 500m: ratio 2.14 -> ceil(4.29)
        (CPU, 0.75, 2, 2),  # 75% / 70%: ratio 1.07, within
        (CPU, 5.0, 2, 6),  # 2.5 cores a pod is capped at the 1-core limit: 200% -> ceil(5.71)
        (QUEUE, 250.0, 1, 3),
        (QUEUE, 100.0, 1, 1),
    ],
)
def test_one_metric_proposes_what_the_hpa_formula_gives(
    trigger: object, value: float, current: int, expected: int
) -> None:
    assert A.propose(trigger, WEB, value, current)[0] == expected


def test_cpu_utilization_is_whole_percent_of_the_request_capped_at_the_limit() -> None:
    assert A.cpu_utilization(1.4, 2, 0.5, 1.0) == 140
    assert A.cpu_utilization(0.3499, 1, 0.5, None) == 69
    assert A.cpu_utilization(9.0, 3, 0.5, 1.0) == 200
    assert A.cpu_utilization(9.0, 3, 0.5, None) == 600


# -- series: up, tolerance, stabilised down, cooldown, max ----------------------------------------


def test_scale_up_is_bounded_by_the_default_policies_then_by_max() -> None:
    decisions = series(
        WEB,
        [
            (0.0, {"cpu": 0.1, "in-flight": 30.0}),  # 5: within 2 + 4 pods and 200%
            (5.0, {"cpu": 0.1, "in-flight": 120.0}),  # wants 20; from 2 at the period's start: 6
            (10.0, {"cpu": 0.1, "in-flight": 120.0}),  # still inside the same 15 s: 6
            (20.0, {"cpu": 0.1, "in-flight": 120.0}),  # the +3 at t=0 is out of the period: 12 -> max 10
            (25.0, {"cpu": 0.1, "in-flight": 600.0}),  # capped at maxReplicas
        ],
        start=2,
    )
    assert [d.replicas for d in decisions] == [5, 6, 6, 10, 10]
    assert [d.desired for d in decisions] == [5, 20, 20, 20, 100]
    assert "scale-up policy" in decisions[1].reason
    assert "maxReplicas" in decisions[3].reason


def test_within_tolerance_nothing_moves() -> None:
    decisions = series(
        WEB,
        [
            (t, {"cpu": 0.7 * 0.5 * 4 * f, "in-flight": 24.0 * f})
            for t, f in ((0, 1.0), (15, 1.09), (30, 0.91))
        ],
        start=4,
    )
    assert [d.replicas for d in decisions] == [4, 4, 4]
    assert decisions[0].reason == "within tolerance"


def test_scale_down_waits_for_the_window_then_goes_one_pod_a_minute() -> None:
    quiet = {"cpu": 0.05, "in-flight": 1.0}
    times = [15.0 * k for k in range(1, 29)]  # 15 .. 420 s
    decisions = series(WEB, [(t, quiet) for t in times], start=6)
    by = {d.at: d.replicas for d in decisions}
    # The first recommendation (6, at t=0) holds the count for 300 s.
    assert {by[t] for t in times if t < 300} == {6}
    assert "stabilisation window" in decisions[0].reason
    assert by[300.0] == 5  # the window has passed: 1 pod per 60 s
    assert by[315.0] == by[345.0] == 5  # the next pod waits for the policy's period
    assert by[360.0] == 4
    assert by[420.0] == 3


def test_a_worker_drains_to_min_after_the_hpa_window_whatever_the_cooldown() -> None:
    """minReplicaCount 1: KEDA's cooldownPeriod (here 600 s) never applies; the HPA's default
    300 s window does, then 100% per 15 s takes it straight to the minimum."""
    long_cooldown = A.Scaler(**{**WORKER.__dict__, "cooldown": 600.0})
    values = [(0.0, {"queue": 350.0, "age": 0.0})] + [
        (15.0 * k, {"queue": 0.0, "age": 0.0}) for k in range(1, 22)
    ]
    decisions = series(long_cooldown, values, start=1)
    by = {d.at: d.replicas for d in decisions}
    assert by[0.0] == 4  # ceil(350 / 100), within max 4
    assert {by[t] for t in by if 0 < t < 300} == {4}
    assert by[300.0] == 1
    assert by[315.0] == 1


def test_keda_cooldown_to_zero_and_activation() -> None:
    scale_to_zero = A.Scaler(
        name="w0",
        deployment="w0",
        kind="ScaledObject",
        min_replicas=0,
        max_replicas=4,
        triggers=(QUEUE_ACTIVATION,),
        cooldown=120.0,
    )
    decisions = series(
        scale_to_zero,
        [
            (0.0, {"queue": 5.0}),  # below activationValue 10: stays idle
            (15.0, {"queue": 50.0}),  # active: KEDA wakes it to 1
            (30.0, {"queue": 50.0}),  # HPA: ceil(50 / 100) = 1
            (45.0, {"queue": 0.0}),  # inactive from here; last active at 30
            (140.0, {"queue": 0.0}),  # 110 s < cooldown
            (150.0, {"queue": 0.0}),  # 120 s: back to 0
            (165.0, {"queue": 0.0}),
        ],
        start=0,
    )
    assert [d.replicas for d in decisions] == [0, 1, 1, 1, 1, 0, 0]
    assert "cooldownPeriod" in decisions[5].reason
    assert not decisions[0].active and decisions[1].active


def test_max_caps_the_queue_and_a_count_above_max_comes_down_to_it() -> None:
    assert [d.replicas for d in series(WORKER, [(0.0, {"queue": 10_000.0, "age": 0.0})], start=1)] == [4]
    above = series(WORKER, [(0.0, {"queue": 0.0, "age": 0.0})], start=7)
    assert above[0].replicas == 4


def test_the_outbox_age_trigger_and_a_missing_metric() -> None:
    up = series(WORKER, [(0.0, {"queue": 0.0, "age": 95.0})], start=1)
    assert up[0].replicas == 4  # ceil(95 / 30) = 4
    # The queue depth unread (broker down): no scale-down on the age alone.
    held = series(WORKER, [(t, {"queue": None, "age": 0.0}) for t in (0.0, 400.0)], start=3)
    assert [d.replicas for d in held] == [3, 3]
    assert "unread" in held[-1].reason


# -- the manifests and the queries --------------------------------------------------------------


def test_every_autoscaler_of_deploy_k8s_is_read_and_fully_simulated() -> None:
    scalers = A.load_scalers(ROOT / "deploy" / "k8s")
    assert scalers, "no ScaledObject or HPA under deploy/k8s"
    for scaler in scalers:
        assert 0 <= scaler.min_replicas <= scaler.max_replicas, scaler.name
        assert scaler.triggers, scaler.name
        for trigger in scaler.triggers:
            assert not trigger.unsupported, (scaler.name, trigger.name, trigger.unsupported)
            assert trigger.target > 0, (scaler.name, trigger.name)
            if trigger.resource:
                assert scaler.cpu_request, f"{scaler.deployment}: a CPU trigger needs a CPU request"


def test_queries_parse_and_evaluate_over_every_target() -> None:
    query = A.parse_query('sum(logistics_http_requests_in_flight{service="inventory"})')
    assert query is not None
    samples = [
        ("logistics_http_requests_in_flight", {"service": "inventory"}, 3.0),
        ("logistics_http_requests_in_flight", {"service": "inventory"}, 4.0),
        ("logistics_http_requests_in_flight", {"service": "shipping"}, 9.0),
    ]
    assert A.evaluate(query, samples) == 7.0
    age = A.parse_query('max(logistics_outbox_oldest_unsent_age_seconds{service="support"})')
    assert age is not None
    assert A.evaluate(age, samples) is None
    assert A.parse_query('rate(logistics_http_requests_total{service="x"}[1m])') is None
    assert A.parse_query('sum(x{service=~"a|b"})') is None


def test_the_ramp_is_open_loop_and_linear() -> None:
    times = A.ramp_arrivals(10.0, 10.0, 120.0)
    assert len(times) == 10 * 120 + 90 * 120 // 2  # the integral: r0 T + (9 r0 / T) T^2 / 2
    assert times == sorted(times)
    assert times[0] == 0.0 and times[-1] < 120.0
    # 10 t + 0.75 t^2 / 2 requests by t: 137.5 by 10 s, 5637.5 by 110 s
    assert sum(t < 10 for t in times) == 138
    assert sum(t >= 110 for t in times) == 6600 - 5638
    assert A.ramp_rate(60.0, 10.0, 10.0, 120.0) == pytest.approx(55.0)

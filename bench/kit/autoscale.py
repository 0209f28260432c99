"""What Kubernetes' HPA and KEDA would decide from metric values, and the autoscalers of deploy/k8s/.

The pure part of bench/scaling_sim.py (tests/bench/test_scaling_sim.py checks it on synthetic
series): no I/O but :func:`load_scalers`, which reads the manifests, and no import of the rest of
the kit, so that a test can load this file alone.

The HPA, as kube-controller-manager computes it (pkg/controller/podautoscaler, autoscaling/v2):

* per metric, ``usageRatio = metric / target``; within the tolerance (``|1 - ratio| <= 0.1``) the
  proposal is the current count, else ``ceil(ratio * current)``. A resource metric (CPU
  ``Utilization``) is the pods' usage in whole percent of their request; an ``AverageValue``
  external metric (KEDA's Prometheus and RabbitMQ triggers) proposes ``ceil(metric / target)``;
* the largest proposal wins; a metric that could not be read blocks a scale-down;
* stabilisation: the recommendation is kept between the lowest recommendation of the scale-up
  window and the highest of the scale-down window (defaults 0 s and 300 s);
* rate: the scaling policies bound the change per period (defaults: up by max(4 pods, 100%) per
  15 s; down by 100% per 15 s), ``selectPolicy`` Max (the default) picks the largest change;
* then minReplicas and maxReplicas.

KEDA owns an HPA per ScaledObject with ``minReplicas = max(minReplicaCount, 1)``. Its own
``cooldownPeriod`` and ``activationValue``/``activationThreshold`` only decide between 0 (or
``idleReplicaCount``) and the minimum: with ``minReplicaCount >= 1`` they change nothing, and the
way down from N is the HPA's scale-down stabilisation window (keda.sh, ScaledObject spec:
"the KEDA cooldownPeriod only applies when scaling to 0").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: kube-controller-manager's --horizontal-pod-autoscaler-tolerance default.
TOLERANCE = 0.1
#: kube-controller-manager's --horizontal-pod-autoscaler-sync-period default.
SYNC_SECONDS = 15.0


# -- the objects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" or "Percent"
    value: int
    period: float


@dataclass(frozen=True)
class Rules:
    """One direction of an HPA ``behavior``."""

    window: float
    policies: tuple[Policy, ...]
    select: str = "Max"  # Max, Min or Disabled


SCALE_UP_DEFAULT = Rules(0.0, (Policy("Pods", 4, 15.0), Policy("Percent", 100, 15.0)))
SCALE_DOWN_DEFAULT = Rules(300.0, (Policy("Percent", 100, 15.0),))


@dataclass(frozen=True)
class Query:
    """A Prometheus query of the one shape the manifests use: ``agg(metric{l="v", ...})``."""

    aggregate: str
    metric: str
    labels: tuple[tuple[str, str], ...]
    text: str


_QUERY = re.compile(r"^\s*(sum|max|min|avg)\s*\(\s*([A-Za-z_:][\w:]*)\s*(?:\{([^}]*)\})?\s*\)\s*$")
_MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*=\s*"([^"]*)"\s*')


def parse_query(text: str) -> Query | None:
    """The query, or None when it is not of the supported shape (only ``=`` matchers)."""
    found = _QUERY.match(text)
    if not found:
        return None
    labels = []
    for part in filter(None, (found.group(3) or "").split(",")):
        matcher = _MATCHER.fullmatch(part)
        if not matcher:
            return None
        labels.append((matcher.group(1), matcher.group(2)))
    return Query(found.group(1), found.group(2), tuple(labels), text.strip())


def evaluate(query: Query, samples: Iterable[tuple[str, Mapping[str, str], float]]) -> float | None:
    """The query over ``(name, labels, value)`` samples (every scraped target's); None: no series."""
    values = [
        value
        for name, labels, value in samples
        if name == query.metric and all(labels.get(k) == v for k, v in query.labels)
    ]
    if not values:
        return None
    if query.aggregate == "sum":
        return sum(values)
    if query.aggregate == "max":
        return max(values)
    if query.aggregate == "min":
        return min(values)
    return sum(values) / len(values)


@dataclass(frozen=True)
class Trigger:
    """One metric of an autoscaler. ``kind``: ``Utilization`` (a resource metric: CPU in percent
    of the pods' request) or ``AverageValue``/``Value`` (an external metric)."""

    name: str
    kind: str
    target: float
    type: str = ""  # the KEDA trigger type (cpu, prometheus, rabbitmq) or the HPA metric type
    activation: float = 0.0
    query: Query | None = None
    queue: str | None = None
    unsupported: str = ""  # why the simulation cannot feed it (then it is left out)

    @property
    def resource(self) -> bool:
        return self.kind == "Utilization"


@dataclass(frozen=True)
class Scaler:
    """A ScaledObject (KEDA) or a HorizontalPodAutoscaler, with what it scales."""

    name: str
    deployment: str
    kind: str  # "ScaledObject" or "HorizontalPodAutoscaler"
    min_replicas: int
    max_replicas: int
    triggers: tuple[Trigger, ...]
    up: Rules = SCALE_UP_DEFAULT
    down: Rules = SCALE_DOWN_DEFAULT
    cooldown: float = 300.0
    polling: float = 30.0
    idle_replicas: int | None = None
    cpu_request: float | None = None  # cores, of the pod's first container (the one that serves)
    cpu_limit: float | None = None
    path: str = ""
    tolerance: float = TOLERANCE
    cooldown_set: bool = False  # the manifest names cooldownPeriod (else KEDA's default)

    @property
    def keda(self) -> bool:
        return self.kind == "ScaledObject"

    @property
    def hpa_min(self) -> int:
        """The HPA's minReplicas: KEDA never lets its HPA go below 1."""
        return max(1, self.min_replicas) if self.keda else self.min_replicas

    @property
    def idle(self) -> int | None:
        """The count KEDA parks the Deployment at when no trigger is active; None: never."""
        if not self.keda:
            return None
        if self.idle_replicas is not None:
            return self.idle_replicas
        return 0 if self.min_replicas == 0 else None


# -- the decision ---------------------------------------------------------------------------------


def cpu_utilization(total_cores: float, replicas: int, request: float, limit: float | None) -> int:
    """Whole percent of the request per pod, as the HPA reads it when the fleet's measured CPU
    ``total_cores`` is spread over ``replicas`` pods; a pod never uses more than its limit."""
    per_pod = total_cores / replicas
    if limit is not None:
        per_pod = min(per_pod, limit)
    milli = int(round(per_pod * 1000, 6))  # metrics-server reports whole millicores
    return milli * 100 // round(request * 1000)


def per_pod(trigger: Trigger, scaler: Scaler, value: float, replicas: int) -> float:
    """What the HPA compares with the target: CPU percent of the request, or value / replicas."""
    if trigger.resource:
        return float(cpu_utilization(value, replicas, scaler.cpu_request or 1.0, scaler.cpu_limit))
    if trigger.kind == "Value":
        return value
    return value / replicas


def propose(trigger: Trigger, scaler: Scaler, value: float, current: int) -> tuple[int, float]:
    """(replicas this metric proposes, its usage ratio) at ``current`` replicas."""
    if trigger.resource:
        ratio = cpu_utilization(value, current, scaler.cpu_request or 1.0, scaler.cpu_limit) / trigger.target
        if abs(1.0 - ratio) <= scaler.tolerance:
            return current, ratio
        return math.ceil(ratio * current), ratio
    # External metrics travel as quantities in milli-units (KEDA's metrics server).
    usage, target = int(value * 1000), int(trigger.target * 1000)
    if trigger.kind == "Value":
        ratio = usage / target
        return (current if abs(1.0 - ratio) <= scaler.tolerance else math.ceil(ratio * current)), ratio
    ratio = usage / (target * current)
    if abs(1.0 - ratio) <= scaler.tolerance:
        return current, ratio
    return math.ceil(usage / target), ratio


@dataclass
class Decision:
    at: float
    previous: int
    replicas: int
    desired: int  # the largest proposal, before stabilisation, policies and bounds
    proposals: dict[str, int] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    active: bool = False


class Autoscaler:
    """One Deployment's simulated replica count, decided at each ``decide(now, values)``."""

    def __init__(self, scaler: Scaler, replicas: int | None = None, start: float = 0.0) -> None:
        self.scaler = scaler
        self.current = scaler.min_replicas if replicas is None else replicas
        # The controller's first recommendation is the count it found.
        self.recommendations: list[tuple[float, int]] = [(start, self.current)]
        self.up_events: list[tuple[float, int]] = []
        self.down_events: list[tuple[float, int]] = []
        self.last_active = start

    @property
    def triggers(self) -> tuple[Trigger, ...]:
        return tuple(t for t in self.scaler.triggers if not t.unsupported)

    def decide(self, now: float, values: Mapping[str, float | None]) -> Decision:
        """``values``: trigger name -> the fleet's metric (total CPU cores for a Utilization
        trigger, the query's value for the others); None or absent: could not be read."""
        s = self.scaler
        previous = self.current
        decision = Decision(now, previous, previous, previous)
        active = any(
            not t.resource and values.get(t.name) is not None and (values[t.name] or 0.0) > t.activation
            for t in self.triggers
        )
        decision.active = active
        if active:
            self.last_active = now
        idle = s.idle
        if idle is not None:
            if self.current <= idle:
                if active:
                    self._set(now, max(s.min_replicas, 1))
                    decision.reason = "KEDA: a trigger is active, out of idle"
                else:
                    decision.reason = "KEDA: idle, no trigger active"
                decision.replicas = self.current
                return decision
            if not active and now - self.last_active >= s.cooldown:
                self._set(now, idle)
                decision.replicas = self.current
                decision.reason = f"KEDA: no trigger active for cooldownPeriod {s.cooldown:.0f} s"
                return decision
        if self.current > s.max_replicas or self.current < s.hpa_min:
            target = min(max(self.current, s.hpa_min), s.max_replicas)
            decision.reason = "outside minReplicas..maxReplicas"
            self._set(now, target)
            decision.replicas = decision.desired = self.current
            return decision
        proposals, missing = {}, []
        for trigger in self.triggers:
            value = values.get(trigger.name)
            if value is None:
                missing.append(trigger.name)
                continue
            proposals[trigger.name], decision.ratios[trigger.name] = propose(trigger, s, value, self.current)
        decision.proposals = proposals
        if not proposals:
            decision.reason = "no metric could be read: unchanged"
            return decision
        desired = max(proposals.values())
        if missing and desired < self.current:
            desired = self.current  # the HPA does not scale down on partial metrics
        decision.desired = desired
        stabilized = self._stabilize(now, desired)
        final, limit = self._rate(now, stabilized)
        self._set(now, final)
        decision.replicas = final
        decision.reason = self._reason(desired, stabilized, final, limit, proposals, missing)
        return decision

    # kube-controller-manager's stabilizeRecommendationWithBehaviors
    def _stabilize(self, now: float, desired: int) -> int:
        up_cut, down_cut = now - self.scaler.up.window, now - self.scaler.down.window
        up, down = desired, desired
        old = None
        for i, (at, recommendation) in enumerate(self.recommendations):
            if at > up_cut:
                up = min(recommendation, up)
            if at > down_cut:
                down = max(recommendation, down)
            if at < up_cut and at < down_cut:
                old = i
        recommendation = self.current
        if recommendation < up:
            recommendation = up
        if recommendation > down:
            recommendation = down
        if old is not None:
            self.recommendations[old] = (now, desired)
        else:
            self.recommendations.append((now, desired))
        return recommendation

    @staticmethod
    def _changed(events: list[tuple[float, int]], period: float, now: float) -> int:
        return sum(change for at, change in events if at > now - period)

    def _limit(self, now: float, rules: Rules, up: bool) -> int:
        if rules.select == "Disabled":
            return self.current
        pick = (min if rules.select == "Min" else max) if up else (max if rules.select == "Min" else min)
        result: int | None = None
        for policy in rules.policies:
            start = (
                self.current
                - self._changed(self.up_events, policy.period, now)
                + self._changed(self.down_events, policy.period, now)
            )
            if policy.type == "Pods":
                proposed = start + policy.value if up else start - policy.value
            elif up:
                proposed = math.ceil(start * (1 + policy.value / 100))
            else:
                proposed = int(start * (1 - policy.value / 100))
            result = proposed if result is None else pick(result, proposed)
        return self.current if result is None else result

    # kube-controller-manager's convertDesiredReplicasWithBehaviorRate
    def _rate(self, now: float, desired: int) -> tuple[int, str]:
        s = self.scaler
        if desired > self.current:
            limit = max(self._limit(now, s.up, up=True), self.current)
            if s.max_replicas > limit:
                return min(desired, limit), ("scale-up policy" if desired > limit else "")
            return min(desired, s.max_replicas), ("maxReplicas" if desired > s.max_replicas else "")
        if desired < self.current:
            limit = min(self._limit(now, s.down, up=False), self.current)
            if s.hpa_min < limit:
                return max(desired, limit), ("scale-down policy" if desired < limit else "")
            return max(desired, s.hpa_min), ("minReplicas" if desired < s.hpa_min else "")
        return desired, ""

    def _set(self, now: float, replicas: int) -> None:
        if replicas > self.current:
            self.up_events.append((now, replicas - self.current))
        elif replicas < self.current:
            self.down_events.append((now, self.current - replicas))
        self.current = replicas
        longest = max((p.period for p in (*self.scaler.up.policies, *self.scaler.down.policies)), default=0.0)
        self.up_events = [e for e in self.up_events if e[0] > now - longest]
        self.down_events = [e for e in self.down_events if e[0] > now - longest]

    def _reason(
        self,
        desired: int,
        stabilized: int,
        final: int,
        limit: str,
        proposals: Mapping[str, int],
        missing: list[str],
    ) -> str:
        s = self.scaler
        parts = []
        if max(desired, s.hpa_min) < stabilized:
            parts.append(f"scale-down held by the {s.down.window:.0f} s stabilisation window")
        elif desired < s.hpa_min and final == s.hpa_min:
            parts.append("at minReplicas")
        elif min(desired, s.max_replicas) > stabilized:
            parts.append(f"scale-up held by the {s.up.window:.0f} s stabilisation window")
        if limit:
            parts.append(f"limited by {limit}")
        if missing:
            parts.append("unread: " + ", ".join(missing))
        if parts:
            return "; ".join(parts)
        if all(n == final for n in proposals.values()):
            return "within tolerance" if final == self.current else "steady"
        return "by " + ", ".join(name for name, n in proposals.items() if n == desired)


# -- the manifests -------------------------------------------------------------------------------


def cpu_cores(text: Any) -> float | None:
    """A Kubernetes CPU quantity ("500m", "1", 0.5) in cores."""
    if text is None:
        return None
    raw = str(text).strip()
    return float(raw[:-1]) / 1000 if raw.endswith("m") else float(raw)


def _rules(spec: Mapping[str, Any] | None, default: Rules) -> Rules:
    if not spec:
        return default
    policies = tuple(
        Policy(str(p["type"]), int(p["value"]), float(p["periodSeconds"])) for p in spec.get("policies") or ()
    )
    window = spec.get("stabilizationWindowSeconds")
    return Rules(
        default.window if window is None else float(window),
        policies or default.policies,
        str(spec.get("selectPolicy") or "Max"),
    )


def _keda_trigger(index: int, raw: Mapping[str, Any]) -> Trigger:
    kind = str(raw.get("type", ""))
    meta = raw.get("metadata") or {}
    metric_type = str(raw.get("metricType") or meta.get("type") or "")
    name = str(raw.get("name") or "")
    if kind in {"cpu", "memory"}:
        return Trigger(
            name or kind,
            "Utilization" if metric_type in {"", "Utilization"} else metric_type,
            float(meta["value"]),
            type=kind,
            unsupported=""
            if kind == "cpu" and metric_type in {"", "Utilization"}
            else f"{kind} {metric_type}",
        )
    if kind == "prometheus":
        query = parse_query(str(meta.get("query", "")))
        short = query.metric.removeprefix("logistics_").removeprefix("http_") if query else ""
        label = name or (f"{query.aggregate} {short}" if query else f"prometheus #{index}")
        return Trigger(
            label,
            metric_type or "AverageValue",
            float(meta.get("threshold", 0)),
            type=kind,
            activation=float(meta.get("activationThreshold", 0) or 0),
            query=query,
            unsupported="" if query else f"query not of the form agg(metric{{...}}): {meta.get('query')}",
        )
    if kind == "rabbitmq":
        mode = str(meta.get("mode") or ("QueueLength" if meta.get("queueLength") else ""))
        value = meta.get("value", meta.get("queueLength", 20))
        queue = str(meta.get("queueName", ""))
        return Trigger(
            name or f"queue {queue.rsplit('.', 1)[-1]}",
            metric_type or "AverageValue",
            float(value),
            type=kind,
            activation=float(meta.get("activationValue", 0) or 0),
            queue=queue,
            unsupported="" if mode == "QueueLength" else f"rabbitmq mode {mode or '?'}",
        )
    return Trigger(
        name or f"{kind} #{index}", metric_type, 0.0, type=kind, unsupported=f"trigger type {kind}"
    )


def _hpa_metric(index: int, raw: Mapping[str, Any]) -> Trigger:
    kind = str(raw.get("type", ""))
    if kind == "Resource":
        resource = raw.get("resource") or {}
        target = resource.get("target") or {}
        supported = resource.get("name") == "cpu" and target.get("type") == "Utilization"
        return Trigger(
            str(resource.get("name", "resource")),
            "Utilization",
            float(target.get("averageUtilization", 0)),
            type=kind,
            unsupported="" if supported else f"resource {resource.get('name')} {target.get('type')}",
        )
    body = raw.get("pods") or raw.get("external") or raw.get("object") or {}
    metric = (body.get("metric") or {}).get("name", "")
    target = body.get("target") or {}
    query = parse_query(f"sum({metric})") if metric else None
    value = float(target.get("averageValue") or target.get("value") or 0)
    return Trigger(
        metric or f"{kind} #{index}",
        "AverageValue" if kind == "Pods" or target.get("type") == "AverageValue" else "Value",
        value,
        type=kind,
        query=query,
        unsupported="" if query else f"{kind} metric without a name",
    )


def load_scalers(k8s_dir: Path) -> list[Scaler]:
    """Every ScaledObject and HorizontalPodAutoscaler under ``k8s_dir``, with the CPU request and
    limit of the first container of the Deployment each scales (sorted by Deployment)."""
    import yaml

    documents: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(k8s_dir.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict):
                documents.append((path, document))
    deployments = {
        (d.get("metadata", {}).get("namespace", ""), d.get("metadata", {}).get("name")): d
        for _, d in documents
        if d.get("kind") == "Deployment"
    }
    found = []
    for path, document in documents:
        kind = document.get("kind")
        if kind not in {"ScaledObject", "HorizontalPodAutoscaler"}:
            continue
        meta, spec = document.get("metadata", {}), document.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        deployment = deployments.get((meta.get("namespace", ""), target.get("name")))
        request = limit = None
        if deployment:
            containers = deployment["spec"]["template"]["spec"]["containers"]
            wanted = target.get("envSourceContainerName")
            container = next((c for c in containers if c.get("name") == wanted), containers[0])
            resources = container.get("resources") or {}
            request = cpu_cores((resources.get("requests") or {}).get("cpu"))
            limit = cpu_cores((resources.get("limits") or {}).get("cpu"))
        if kind == "ScaledObject":
            behavior = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
                "behavior"
            ) or {}
            triggers = tuple(_keda_trigger(i, t) for i, t in enumerate(spec.get("triggers") or ()))
            found.append(
                Scaler(
                    name=str(meta.get("name")),
                    deployment=str(target.get("name")),
                    kind=kind,
                    min_replicas=int(spec.get("minReplicaCount", 0)),
                    max_replicas=int(spec.get("maxReplicaCount", 100)),
                    triggers=triggers,
                    up=_rules(behavior.get("scaleUp"), SCALE_UP_DEFAULT),
                    down=_rules(behavior.get("scaleDown"), SCALE_DOWN_DEFAULT),
                    cooldown=float(spec.get("cooldownPeriod", 300)),
                    cooldown_set="cooldownPeriod" in spec,
                    polling=float(spec.get("pollingInterval", 30)),
                    idle_replicas=spec.get("idleReplicaCount"),
                    cpu_request=request,
                    cpu_limit=limit,
                    path=str(path),
                )
            )
        else:
            behavior = spec.get("behavior") or {}
            found.append(
                Scaler(
                    name=str(meta.get("name")),
                    deployment=str(target.get("name")),
                    kind=kind,
                    min_replicas=int(spec.get("minReplicas", 1)),
                    max_replicas=int(spec["maxReplicas"]),
                    triggers=tuple(_hpa_metric(i, m) for i, m in enumerate(spec.get("metrics") or ())),
                    up=_rules(behavior.get("scaleUp"), SCALE_UP_DEFAULT),
                    down=_rules(behavior.get("scaleDown"), SCALE_DOWN_DEFAULT),
                    cpu_request=request,
                    cpu_limit=limit,
                    path=str(path),
                )
            )
    return sorted(found, key=lambda s: s.deployment)


# -- the load ramp ---------------------------------------------------------------------------------


def ramp_rate(t: float, r0: float, factor: float, duration: float) -> float:
    """The offered rate at ``t``: ``r0`` rising linearly to ``factor * r0`` over ``duration``."""
    if duration <= 0:
        return r0 * factor
    return r0 * (1 + (factor - 1) * min(max(t, 0.0), duration) / duration)


def ramp_arrivals(r0: float, factor: float, duration: float) -> list[float]:
    """The send times (s from the start) of an open-loop linear ramp: the k-th request at the t
    where the integral of :func:`ramp_rate` reaches k."""
    slope = r0 * (factor - 1) / duration if duration > 0 else 0.0
    total = r0 * duration + slope * duration**2 / 2
    times = []
    for k in range(int(total)):
        if slope == 0:
            times.append(k / r0)
        else:  # r0 t + slope t^2 / 2 = k
            times.append((-r0 + math.sqrt(r0 * r0 + 2 * slope * k)) / slope)
    return times

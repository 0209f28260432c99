"""Horizontal scaling on one machine, through each front door: the local cluster (2 web replicas
x 2 gunicorn processes and 2 workers per service, under supervisord) behind real nginx and
HAProxy.

- a burst of 200 shipments ends with every shipment ready, each applied once, the inventory
  invariants holding, and the work shared: each web replica served 30-70 % of its service's
  API requests and each worker replica handled 30-70 % of its service's messages (from their
  /metrics);
- one web replica and one worker SIGKILLed mid-burst: no keyed request lost (the client retries
  with its Idempotency-Key), no event lost or applied twice; the front door's errors and the
  time it took to route around the dead replica are printed;
- a replica SIGTERMed under a steady mixed load: no failed request (clients retry only keyed
  POSTs and idempotent methods), every keyed POST applied exactly once, exit status 0.

The figures are printed (``-rP`` or ``-s`` shows them) and recorded as user properties.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from ..helpers.cluster import Cluster, DeadReplicaWatch
from ..helpers.cluster_load import (
    SKUS,
    WAREHOUSE,
    Burst,
    assert_each_applied_once,
    describe,
    shares,
    shipment_body,
    snapshot,
    wait_settled,
)
from ..helpers.front_door import FrontDoor
from ..invariants import assert_inventory_invariants

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.cluster,
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
    pytest.mark.redis,
]

BALANCERS = ["nginx", "haproxy"]
SERVICES = ("inventory", "shipping", "support")


def report(request: pytest.FixtureRequest, balancer: str, **figures: object) -> None:
    for name, value in figures.items():
        request.node.user_properties.append((f"{balancer}.{name}", value))
    print("".join(f"\n[{balancer}] {name}: {value}" for name, value in figures.items()))


def assert_no_dead_letters(cluster: Cluster) -> None:
    assert cluster.dead_letters() == dict.fromkeys(SERVICES, 0)


@pytest.mark.parametrize("balancer", BALANCERS)
def test_a_burst_is_shared_by_every_replica_and_settles_exactly_once(
    cluster: Cluster, token: str, balancer: str, request: pytest.FixtureRequest
) -> None:
    door = FrontDoor(cluster.front_door(balancer), token)
    webs = [p for svc in SERVICES for p in cluster.web(svc)]
    workers = [p for svc in SERVICES for p in cluster.workers(svc)]
    requests_before = snapshot(cluster, webs, cluster.api_requests)
    consumed_before = snapshot(cluster, workers, cluster.consumed)

    burst = Burst(door, f"burst-{balancer}-{uuid.uuid4().hex[:6]}", reads=True)()
    assert door.final_failures() == []
    assert {o.status for o in burst.posts} == {201}
    wait_settled(cluster, burst.references())
    assert_each_applied_once(cluster, burst.references())
    assert_inventory_invariants(cluster.engine("inventory"))
    assert_no_dead_letters(cluster)

    requests_after = snapshot(cluster, webs, cluster.api_requests)
    consumed_after = snapshot(cluster, workers, cluster.consumed)
    lines = {}
    out_of_range = []
    for svc in SERVICES:
        for kind, processes, before, after in (
            ("web", cluster.web(svc), requests_before, requests_after),
            ("worker", cluster.workers(svc), consumed_before, consumed_after),
        ):
            names = [p.name for p in processes]
            share = shares({n: before[n] for n in names}, {n: after[n] for n in names})
            counts = {n: after[n] - before[n] for n in names}
            lines[f"{svc} {kind} shares"] = describe(share, counts)
            out_of_range += [f"{n} {s:.0%}" for n, s in share.items() if not 0.3 <= s <= 0.7]
    report(
        request,
        balancer,
        burst=f"{burst.count} shipments (+3 reads each) in {burst.seconds:.1f} s by {burst.threads} clients",
        front_door_errors=len(door.failed_attempts()),
        **lines,
    )
    assert out_of_range == [], f"replicas outside 30-70 %: {out_of_range}"


@pytest.mark.fault
@pytest.mark.parametrize("balancer", BALANCERS)
def test_a_web_replica_and_a_worker_killed_mid_burst_lose_nothing(
    cluster: Cluster, token: str, balancer: str, request: pytest.FixtureRequest
) -> None:
    door = FrontDoor(cluster.front_door(balancer), token)
    web, worker = cluster.web("shipping")[0], cluster.workers("inventory")[0]
    watch = DeadReplicaWatch(cluster, balancer, web)
    killed = threading.Event()

    def kill_at_60(done: int) -> None:
        if done >= 60 and not killed.is_set():
            killed.set()
            watch.kill()
            cluster.kill(worker)

    try:
        burst = Burst(door, f"kill-{balancer}-{uuid.uuid4().hex[:6]}", on_progress=kill_at_60)()
        assert killed.is_set()
        assert door.final_failures() == [], "a request the client retried with its key was lost"
        assert {o.status for o in burst.posts} == {201}
        wait_settled(cluster, burst.references())
        assert_each_applied_once(cluster, burst.references())
        assert_inventory_invariants(cluster.engine("inventory"))
        assert_no_dead_letters(cluster)
        attempts, seconds, how = watch.report()
        failed = door.failed_attempts()
        report(
            request,
            balancer,
            burst=f"{burst.count} keyed shipments in {burst.seconds:.1f} s; killed {web.name} and "
            f"{worker.name} (SIGKILL) after 60",
            front_door_errors=f"{len(failed)} of {len(door.attempts())} attempts "
            f"({', '.join(sorted({str(a.status or a.error.split(':')[0]) for a in failed})) or 'none'})",
            client_retries=sum(o.retried for o in door.outcomes),
            waited_for_a_dead_claim=f"{door.lease_waits()} keyed requests (409 until the 60 s lease ends)",
            attempts_on_the_dead_replica=attempts,
            route_around_seconds=f"{seconds:.3f}" if seconds is not None else "not measured",
            measured=how,
        )
        assert seconds is not None, "HAProxy never marked the dead replica down"
    finally:
        for process in (web, worker):
            if cluster.state(process) != "RUNNING":
                cluster.start(process)
        # Both balancers see the replica again before the next test (HAProxy after 2 checks).
        wait_for_haproxy_up(cluster, cluster.haproxy_server(web))


def wait_for_haproxy_up(cluster: Cluster, key: tuple[str, str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.haproxy_servers()[key]["status"] == "UP":
            return
        time.sleep(0.1)
    raise AssertionError(f"HAProxy did not mark {key} UP again")


@pytest.mark.parametrize("balancer", BALANCERS)
def test_sigterm_under_steady_load_fails_no_request(
    cluster: Cluster, token: str, balancer: str, request: pytest.FixtureRequest
) -> None:
    door = FrontDoor(cluster.front_door(balancer), token)
    victim = cluster.web("shipping")[0]
    run = f"term-{balancer}-{uuid.uuid4().hex[:6]}"
    stop = threading.Event()
    posted: list[str] = []
    lock = threading.Lock()
    counter = iter(range(10**6))

    def client() -> None:
        while not stop.is_set():
            with lock:
                n = next(counter)
            reference = f"{run}-{n}"
            created = door.request("POST", "/v1/shipments", shipment_body(reference, n), key=reference)
            with lock:
                posted.append(reference)
            if created.status == 201:
                door.request("GET", f"/v1/shipments/{created.body['id']}")
            door.request("GET", f"/v1/stock?warehouse={WAREHOUSE}&sku={SKUS[n % len(SKUS)]}")

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3)
        terminated = cluster.terminate(victim)
        exited = cluster.wait_stopped(victim)
        stopped_after = time.monotonic() - terminated
        time.sleep(4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    try:
        failed = door.failed_attempts()
        report(
            request,
            balancer,
            load=f"{len(door.outcomes)} requests ({len(posted)} keyed POSTs, the rest GETs) by 6 clients "
            f"over {3 + stopped_after + 4:.0f} s; SIGTERM to {victim.name} after 3 s",
            replica_stopped=f"{exited['statename']} with exit status {exited['exitstatus']}, "
            f"{stopped_after:.1f} s after SIGTERM",
            final_failures=len(door.final_failures()),
            front_door_errors=f"{len(failed)} of {len(door.attempts())} attempts, retried by the clients",
            client_retries=sum(o.retried for o in door.outcomes),
        )
        assert door.final_failures() == []
        assert exited["exitstatus"] == 0, exited
        wait_settled(cluster, posted)
        assert_each_applied_once(cluster, sorted(posted))
        assert_inventory_invariants(cluster.engine("inventory"))
    finally:
        cluster.start(victim)
        wait_for_haproxy_up(cluster, cluster.haproxy_server(victim))

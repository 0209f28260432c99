"""Load for the local cluster and what must hold after it: seed stock through the front door,
a burst of shipments (each POST with its Idempotency-Key, then a few reads), the settling of
the saga, and the checks that nothing was lost or applied twice."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bus import wait_until
from .cluster import Cluster, Process
from .front_door import FrontDoor, Outcome

WAREHOUSE = "CL"
SKUS = tuple(f"CL-{n:03d}" for n in range(1, 21))
STOCK = 5000
ADDRESS = {
    "name": "Sam Visser",
    "line1": "Damrak 1",
    "city": "Amsterdam",
    "postal_code": "1012 LG",
    "country": "NL",
}


def admin_token(cluster: Cluster) -> str:
    logistics = str(Path(sys.executable).parent / "logistics")
    done = subprocess.run(
        [logistics, "token", "--role", "admin", "--subject", "cluster-test", "--ttl", "2h"],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def seed(door: FrontDoor) -> None:
    """The warehouse, SKUS and STOCK units of each, through the front door (keyed, so a rerun
    of a step replays)."""

    def create(path: str, body: dict[str, Any], key: str) -> None:
        outcome = door.request("POST", path, body, key=key)
        assert outcome.status in (201, 409), f"seeding POST {path}: {outcome.status} {outcome.body}"

    create("/v1/warehouses", {"code": WAREHOUSE, "name": "Cluster test", "address": ADDRESS}, "seed-wh")
    for sku in SKUS:
        item = {
            "sku": sku,
            "name": f"Cluster item {sku}",
            "unit_weight_g": 250,
            "length_mm": 100,
            "width_mm": 50,
            "height_mm": 20,
            "reorder_point": 5,
        }
        create("/v1/items", item, f"seed-item-{sku}")
        create("/v1/receipts", {"warehouse": WAREHOUSE, "sku": sku, "quantity": STOCK}, f"seed-stock-{sku}")


def shipment_body(reference: str, n: int) -> dict[str, Any]:
    return {
        "reference": reference,
        "warehouse": WAREHOUSE,
        "ship_to": ADDRESS,
        "lines": [{"sku": SKUS[n % len(SKUS)], "quantity": 1}],
    }


@dataclass
class Burst:
    """``count`` shipments POSTed by ``threads`` clients, each (with ``reads``) followed by a
    GET of the shipment, of its stock and of the ticket list, so every service's web replicas
    see traffic; ``on_progress(done)`` runs in a client thread after each shipment."""

    door: FrontDoor
    run: str
    count: int = 200
    threads: int = 8
    reads: bool = False
    on_progress: Callable[[int], None] | None = None
    posts: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def references(self) -> list[str]:
        return [f"{self.run}-{n}" for n in range(self.count)]

    def _one(self, n: int) -> Outcome:
        reference = f"{self.run}-{n}"
        outcome = self.door.request("POST", "/v1/shipments", shipment_body(reference, n), key=reference)
        if self.reads and outcome.status == 201:
            self.door.request("GET", f"/v1/shipments/{outcome.body['id']}")
            self.door.request("GET", f"/v1/stock?warehouse={WAREHOUSE}&sku={SKUS[n % len(SKUS)]}")
            self.door.request("GET", "/v1/tickets?limit=1")
        with self._lock:
            self._done += 1
            done = self._done
        if self.on_progress is not None:
            self.on_progress(done)
        return outcome

    def __call__(self) -> Burst:
        self._lock = threading.Lock()
        self._done = 0
        started = time.monotonic()
        with ThreadPoolExecutor(self.threads) as pool:
            self.posts = list(pool.map(self._one, range(self.count)))
        self.seconds = time.monotonic() - started
        return self


def wait_settled(cluster: Cluster, references: list[str], timeout: float = 150) -> None:
    """Until every shipment is ready in shipping and in support's read model, and no service
    has an unpublished outbox row left."""
    pattern = references[0].rsplit("-", 1)[0] + "-%"

    def ready() -> int:
        return cluster.scalar(
            "shipping",
            "SELECT count(*) FROM shipments WHERE reference LIKE :p AND status = 'ready'",
            p=pattern,
        )

    wait_until(lambda: ready() >= len(references), timeout, what=f"{len(references)} shipments ready")

    def unpublished() -> int:
        return sum(
            cluster.scalar(svc, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
            for svc in ("inventory", "shipping", "support")
        )

    wait_until(lambda: unpublished() == 0, timeout, what="every outbox row published")

    def viewed() -> int:
        return cluster.scalar(
            "support",
            "SELECT count(*) FROM shipment_view WHERE reference LIKE :p AND status = 'ready'",
            p=pattern,
        )

    wait_until(lambda: viewed() >= len(references), timeout, what="support's read model caught up")


def assert_each_applied_once(cluster: Cluster, references: list[str]) -> None:
    """Every shipment exists once and is ready, reached ready once, holds exactly one active
    reservation, and support's read model has it once, as ready."""
    pattern = references[0].rsplit("-", 1)[0] + "-%"
    rows = cluster.rows(
        "shipping",
        "SELECT reference, count(*), min(id), min(status) FROM shipments WHERE reference LIKE :p "
        "GROUP BY reference",
        p=pattern,
    )
    by_reference = {r[0]: r for r in rows}
    assert sorted(by_reference) == sorted(references), "shipments missing or unexpected"
    assert [r for r in rows if r[1] != 1] == [], "a keyed POST created more than one shipment"
    assert {r[3] for r in rows} == {"ready"}
    ids = [r[2] for r in rows]
    readies = cluster.rows(
        "shipping",
        "SELECT h.shipment_id, count(*) FROM shipment_history h JOIN shipments s ON s.id = h.shipment_id "
        "WHERE s.reference LIKE :p AND h.to_status = 'ready' GROUP BY h.shipment_id",
        p=pattern,
    )
    assert len(readies) == len(ids) and {r[1] for r in readies} == {1}, "stock.reserved applied twice"
    reservations = cluster.rows(
        "inventory",
        "SELECT reference, count(*), min(status), max(status) FROM reservations "
        "WHERE reference = ANY(:ids) GROUP BY reference",
        ids=ids,
    )
    assert len(reservations) == len(ids), "a shipment.requested was lost"
    assert {(r[1], r[2], r[3]) for r in reservations} == {(1, "active", "active")}, (
        "a shipment.requested was applied twice (or a reservation is not active)"
    )
    views = cluster.rows(
        "support",
        "SELECT count(*), count(DISTINCT shipment_id) FROM shipment_view WHERE reference LIKE :p",
        p=pattern,
    )
    assert views[0] == (len(ids), len(ids))


def snapshot(
    cluster: Cluster, processes: list[Process], read: Callable[[Process], float]
) -> dict[str, float]:
    return {p.name: read(p) for p in processes}


def shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {name: after[name] - before[name] for name in before}
    total = sum(delta.values())
    assert total > 0, f"no work counted: {delta}"
    return {name: value / total for name, value in delta.items()}


def describe(shares_: dict[str, float], counts: dict[str, float]) -> str:
    return ", ".join(f"{name.split(':')[1]} {shares_[name]:.0%} ({counts[name]:.0f})" for name in shares_)

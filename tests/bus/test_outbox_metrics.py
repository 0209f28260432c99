"""The outbox backlog gauges come from the database: they stay on the worker's /metrics,
and keep growing, while the relay's broker is cut (the proxy), and drop to 0 once it heals."""

from __future__ import annotations

import pytest

from logistics_shared.bus.worker import Worker

from ..helpers.bus import unpublished, wait_until
from ..helpers.metrics import sample, scrape_app
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import seed

pytestmark = [pytest.mark.postgres, pytest.mark.fault]

FAST = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 2}


def test_backlog_and_age_are_measured_while_the_broker_is_cut(service_client, proxy, namespace):
    client = service_client(
        "inventory",
        "postgres",
        broker_url=proxy.url,
        bus_namespace=namespace,
        outbox_metrics_seconds=0.2,
        **FAST,
    )
    seed(client)
    worker = Worker(client.registry["logistics.service"], client.settings, client.registry)
    health = worker.health_app()

    def gauge(name: str) -> float | None:
        return sample(scrape_app(health), name, service="inventory")

    def backlog() -> float | None:
        return gauge("logistics_outbox_backlog")

    def age() -> float | None:
        return gauge("logistics_outbox_oldest_unsent_age_seconds")

    worker.start()
    try:
        wait_until(lambda: worker.readiness()["status"] == "ready", what="worker ready")
        wait_until(lambda: backlog() == 0, what="logistics_outbox_backlog 0 on /metrics before the cut")
        proxy.cut()
        wait_until(lambda: worker.readiness()["relay"] == "disconnected", what="the relay notices the cut")

        staff = client.as_("warehouse_staff", "AMS")

        def receipts(count: int) -> None:
            for _ in range(count):
                staff.post_json("/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1})

        receipts(5)
        wait_until(
            lambda: (backlog() or 0) >= 5, what="logistics_outbox_backlog >= 5 on /metrics, broker cut"
        )
        first_age = age()
        assert first_age is not None and first_age >= 0
        receipts(5)
        wait_until(
            lambda: (backlog() or 0) >= 10, what="logistics_outbox_backlog >= 10 on /metrics, broker cut"
        )
        wait_until(
            lambda: (age() or 0) > first_age + 0.5,
            what=f"logistics_outbox_oldest_unsent_age_seconds growing past {first_age + 0.5:.1f}",
        )
        assert unpublished(client) >= 10, "nothing left the outbox while the broker was cut"
        assert worker.relay is not None and not worker.relay.connected.is_set()

        proxy.heal()
        wait_until(lambda: unpublished(client) == 0, timeout=60, what="the outbox drained after the heal")
        wait_until(lambda: backlog() == 0, what="logistics_outbox_backlog back to 0 on /metrics")
        wait_until(lambda: age() == 0, what="logistics_outbox_oldest_unsent_age_seconds back to 0")
        assert_inventory_invariants(client.engine)
    finally:
        worker.shutdown()

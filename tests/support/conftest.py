"""Fixtures of the support tests (the bus fixtures come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from logistics_shared.bus.worker import Worker

from ..helpers.bus import wait_until
from ..helpers.support import FAST
from ..inventory.conftest import seed


# All three services on the machine's PostgreSQL and RabbitMQ, with their workers running.
@pytest.fixture
def everything(service_client, specs, rabbit, namespace):
    clients = {
        name: service_client(name, "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
        for name in ("inventory", "shipping", "support")
    }
    seed(clients["inventory"])
    workers = [Worker(specs[name], c.settings, c.registry, periodic=False) for name, c in clients.items()]
    for worker in workers:
        worker.start()
    for worker in workers:
        wait_until(lambda w=worker: w.readiness()["status"] == "ready", what="workers ready")
    yield clients
    for worker in workers:
        worker.shutdown()

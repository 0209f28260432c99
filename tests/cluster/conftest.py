"""One local cluster (deploy/local/cluster.py, as `make cluster` runs it) for the tests of this
package: its own databases (lt_cl_<tag>_<svc>), bus namespace, directory and free block of
ports, on the machine's PostgreSQL, RabbitMQ and Redis; removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers.cluster import Cluster, machine_lock, need_cluster_tools
from ..helpers.cluster_load import admin_token, seed
from ..helpers.front_door import FrontDoor
from ..services import AMQP_URL, PG_URL, REDIS_URL, need_postgres, need_service


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    need_postgres()
    need_service("RabbitMQ", "127.0.0.1", 5672)
    need_service("Redis", "127.0.0.1", 6379)
    need_cluster_tools()
    with machine_lock():
        # Not under pytest's 0700 tmp: nginx's worker processes (nobody) use its temp dirs.
        directory = Path(tempfile.mkdtemp(prefix="lt_cl_"))
        os.chmod(directory, 0o755)
        running = Cluster(directory, PG_URL, AMQP_URL, REDIS_URL)
        try:
            running.up()
            seed(FrontDoor(running.front_door("nginx"), admin_token(running)))
            yield running
        finally:
            running.down()
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def token(cluster: Cluster) -> str:
    return admin_token(cluster)

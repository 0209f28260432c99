"""Fixtures for bus tests on the machine's RabbitMQ and PostgreSQL.

Every test gets its own bus namespace (exchange and queue prefix), so tests
never see each other's messages, and deletes what it declared afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from kombu import Connection

from ..helpers.bus import Tap
from ..services import AMQP_URL, need_service
from .proxy import TcpProxy


@pytest.fixture
def rabbit() -> str:
    need_service("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


@pytest.fixture
def namespace(rabbit: str) -> Iterator[str]:
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    _delete_namespace(rabbit, ns)


def _delete_namespace(url: str, ns: str) -> None:
    """Delete every queue and exchange named with the test's prefix."""
    import subprocess

    try:
        out = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
        exchanges = subprocess.run(
            ["rabbitmqctl", "-q", "list_exchanges", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return
    with Connection(url) as conn:
        channel = conn.channel()
        for name in out:
            if name.startswith(ns + "."):
                channel.queue_delete(name)
        for name in exchanges:
            if name.startswith(ns + "."):
                channel.exchange_delete(name)


@pytest.fixture
def proxy(rabbit: str) -> Iterator[TcpProxy]:
    p = TcpProxy("127.0.0.1", 5672)
    yield p
    p.close()


@pytest.fixture
def tap(rabbit: str, namespace: str) -> Iterator[Callable[[str], Tap]]:
    taps: list[Tap] = []

    def make(producer: str) -> Tap:
        taps.append(Tap(rabbit, namespace, producer))
        return taps[-1]

    yield make
    for t in taps:
        t.close()

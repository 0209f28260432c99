"""Fixtures for bus tests on the machine's RabbitMQ and PostgreSQL.

``rabbit``, ``namespace`` (a bus namespace of the test's own) and ``proxy`` (a TCP
proxy to cut) live in tests/conftest.py: tests/ops needs them too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ..helpers.bus import Tap


@pytest.fixture
def tap(rabbit: str, namespace: str) -> Iterator[Callable[[str], Tap]]:
    taps: list[Tap] = []

    def make(producer: str) -> Tap:
        taps.append(Tap(rabbit, namespace, producer))
        return taps[-1]

    yield make
    for t in taps:
        t.close()

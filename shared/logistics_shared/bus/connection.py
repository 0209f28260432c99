"""Broker connections that never hang a thread on a broker that stopped answering."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kombu.connection import Connection

from ..settings import Settings

#: Seconds a socket read or write may block outside drain_events' own timeout.
SOCKET_TIMEOUT = 10


def connection_factory(settings: Settings, *, heartbeat: bool) -> Callable[[], Connection]:
    options: dict[str, Any] = {"confirm_publish": False}
    if settings.broker_url.startswith(("amqp", "pyamqp")):
        options.update(read_timeout=SOCKET_TIMEOUT, write_timeout=SOCKET_TIMEOUT)

    def connect() -> Connection:
        return Connection(
            settings.broker_url,
            heartbeat=settings.bus_heartbeat if heartbeat and settings.bus_heartbeat else None,
            connect_timeout=5,
            transport_options=options,
        )

    return connect


@contextmanager
def broker_connection(connect: Callable[[], Connection]) -> Iterator[Connection]:
    """Open a connection; after a failure drop it without the close handshake.

    A graceful AMQP close waits for the broker's Close-Ok: after a stall or a
    confirm timeout that reply may never come, and the thread would hang.
    """
    connection = connect()
    try:
        yield connection
    except BaseException:
        connection.collect()
        raise
    try:
        connection.release()
    except Exception:  # noqa: BLE001 - a failed goodbye is no reason to hang or crash
        connection.collect()

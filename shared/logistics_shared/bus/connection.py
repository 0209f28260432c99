"""Broker connections that never hang a thread on a broker that stopped answering."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from amqp.transport import TCPTransport
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


#: Bytes one socket read may take: py-amqp reads each frame's header, payload
#: and end byte with separate ``recv`` calls (about nine per message).
READ_CHUNK = 65536


def buffer_reads(connection: Connection) -> None:
    """Let py-amqp read the socket in large chunks instead of a few bytes at a time.

    py-amqp keeps whatever a read returned beyond the bytes it asked for in
    its read buffer and serves the next frames from there, so asking the
    socket for more changes nothing but the number of system calls (and of
    GIL hand-overs between a worker's relay and consumer threads). A no-op on
    other transports, and where py-amqp's internals are not as expected.
    """
    transport = getattr(connection.connection, "transport", None)
    if not isinstance(transport, TCPTransport) or not hasattr(transport, "_quick_recv"):
        return
    sock = transport.sock
    if sock is None:
        return
    recv = sock.recv

    def quick_recv(n: int) -> bytes:
        data: bytes = recv(max(n, READ_CHUNK))
        return data

    transport._quick_recv = quick_recv


@contextmanager
def coalesced_writes(connection: Connection) -> Iterator[None]:
    """Send every frame written inside the block in one ``sendall`` at its end.

    Publishing a batch otherwise costs one system call per message. Frames are
    complete when written, so what was buffered is sent even if the block
    fails (the broker must see every message a delivery tag was counted for).
    """
    transport = getattr(connection.connection, "transport", None)
    write = getattr(transport, "_write", None)
    if not isinstance(transport, TCPTransport) or write is None:
        yield
        return
    chunks: list[bytes] = []
    transport._write = lambda data: chunks.append(bytes(data))
    try:
        yield
    finally:
        transport._write = write
        if chunks:
            write(b"".join(chunks))

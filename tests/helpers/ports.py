"""Blocks of loopback ports for servers the tests start, below the ephemeral range: a port
in that range can be taken at any moment by an outgoing connection (a client socket gets
its local port from there), so a block probed free a moment ago may not be free to listen
on by the time the server binds it ("Address already in use", seen in CI)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

LOW = 28000  # above the private PostgreSQL (24000-24999) and RabbitMQ (27000-27999) ranges


def ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_block(offsets: tuple[int, ...] | range, *, tries: int = 100) -> int:
    """A base such that ``base + o`` is free on 127.0.0.1 for every o, all below the ephemeral range."""
    span = max(offsets) + 1
    high = max(LOW + 1, ephemeral_floor() - span)
    for _ in range(tries):
        base = LOW + int.from_bytes(os.urandom(2), "big") % (high - LOW)
        try:
            with contextlib.ExitStack() as stack:
                for offset in offsets:
                    probe = stack.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no free block of {span} ports in {LOW}-{high}")

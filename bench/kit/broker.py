"""RabbitMQ: a kombu connection that cannot hang on the way out, the broker's version, and the
deletion of every queue and exchange of a run's bus namespace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection


@contextmanager
def broker(url: str, **options: Any) -> Iterator[Connection]:
    """A kombu connection that is closed politely only when nothing went wrong.

    After Ctrl-C lands inside py-amqp (say mid-frame while waiting for a confirm), a polite
    close can wait forever for a Close-Ok that never comes; ``collect()`` drops the socket.
    """
    conn = Connection(url, connect_timeout=5, **options)
    try:
        yield conn
    except BaseException:
        conn.collect()
        raise
    conn.release()


def broker_version(broker_url: str) -> str:
    try:
        with broker(broker_url) as conn:
            conn.connect()
            props = conn.connection.server_properties
            product = props.get("product", "broker")
            return f"{product} {props.get('version', '?')}"
    except Exception as exc:
        raise SystemExit(f"cannot reach the broker at {broker_url}: {exc}") from None


def delete_namespace(broker_url: str, namespace: str, known: list[str]) -> None:
    """Delete every queue and exchange named with the run's prefix (as tests/bus/conftest.py does)."""
    queues, exchanges = list(known), list[str]()
    try:
        for kind, into in (("list_queues", queues), ("list_exchanges", exchanges)):
            out = subprocess.run(
                ["rabbitmqctl", "-q", kind, "name"], capture_output=True, text=True, timeout=30, check=False
            ).stdout.split()
            into.extend(name for name in out if name.startswith(namespace + "."))
    except (OSError, subprocess.TimeoutExpired):
        print("rabbitmqctl unavailable: only the raw queues are deleted", file=sys.stderr)
    with broker(broker_url) as conn:
        channel = conn.channel()
        for name in sorted(set(queues)):
            channel.queue_delete(name)
        for name in sorted(set(exchanges)):
            channel.exchange_delete(name)
    print(
        f"deleted {len(set(queues))} queues and {len(set(exchanges))} exchanges of {namespace}",
        file=sys.stderr,
    )


def safely_delete_namespace(broker_url: str, namespace: str) -> None:
    """``delete_namespace`` on the way out of a run: a failure is reported, not raised."""
    try:
        delete_namespace(broker_url, namespace, [])
    except Exception as exc:
        print(f"could not delete the queues of {namespace}: {exc}", file=sys.stderr)

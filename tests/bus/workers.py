"""Workers as real subprocesses (``logistics worker <svc>``), and the broker's
view of their queues, for crash tests on the machine's RabbitMQ.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

LOGISTICS = str(Path(sys.executable).with_name("logistics"))


def worker_env(service: str, client: Any, broker_url: str, namespace: str) -> dict[str, str]:
    """The environment of a worker on ``client``'s database; no LOGISTICS_* leaks in from ours."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")},
        f"LOGISTICS_{service.upper()}_DATABASE_URL": client.settings.database_url,
        "LOGISTICS_BROKER_URL": broker_url,
        "LOGISTICS_BUS_NAMESPACE": namespace,
        "LOGISTICS_JWT_SECRET": client.settings.jwt_secret,
        "LOGISTICS_LOG_LEVEL": "WARNING",
    }


def start_worker(service: str, env: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen, Path]:
    """Start ``logistics worker <service> --no-relay``; returns the process and its log file."""
    with socket.socket() as probe:  # a port that is free right now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = log_dir / f"{service}-worker-{port}.log"
    # A file, not a pipe: nobody reads a pipe here, and a full one would block the worker.
    return subprocess.Popen(
        [LOGISTICS, "worker", service, "--no-relay", "--health-port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    ), log


def queue_exists(name: str) -> bool:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True, check=False
    ).stdout.split()
    return name in out


def queue_depth(name: str) -> int:
    """Ready plus unacknowledged messages of one queue (-1 if there is no such queue)."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages_ready", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return int(parts[1]) + int(parts[2])
    return -1

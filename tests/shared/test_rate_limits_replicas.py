"""Two real web replicas (two ``logistics serve`` processes) on one Redis spend one budget."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis

from ..conftest import JWT_SECRET
from ..embedded import eventually
from ..services import REDIS_URL, need_service

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
LOGISTICS = str(Path(sys.executable).with_name("logistics"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str, token: str = "") -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        response.read()
        # Lower-cased: waitress title-cases field names (Ratelimit-Policy); HTTP does not care.
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        conn.close()


@contextmanager
def replica(env: dict[str, str], log: Path) -> Iterator[int]:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [LOGISTICS, "serve", "inventory", "--server", "waitress", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                return _get(port, "/healthz")[0] == 200
            except OSError:
                return False

        eventually(up, 60, what=f"replica on {port} answering /healthz")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_two_serve_processes_share_one_budget_in_redis(tmp_path):
    need_service("Redis", "127.0.0.1", 6379)
    prefix = f"lt-rl-{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGISTICS_", "PROMETHEUS_"))}
    env.update(
        LOGISTICS_VAR_DIR=str(tmp_path / "var"),
        LOGISTICS_JWT_SECRET=JWT_SECRET,
        LOGISTICS_LOG_LEVEL="WARNING",
        LOGISTICS_ACCESS_LOG="false",
        LOGISTICS_RATE_LIMIT_STORAGE_URL=REDIS_URL,
        LOGISTICS_RATE_LIMIT_KEY_PREFIX=prefix,
        LOGISTICS_RATE_LIMIT_ADMIN_READ="4",
    )
    # One database for both, as two replicas of one deployment.
    subprocess.run([LOGISTICS, "migrate", "inventory"], env=env, check=True, capture_output=True)
    token = subprocess.run(
        [LOGISTICS, "token", "--role", "admin", "--subject", "replicas"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        with ExitStack() as stack:
            ports = [stack.enter_context(replica(env, tmp_path / f"serve-{n}.log")) for n in range(2)]
            # The default sync interval: replica 0 spends the budget (its last tenth counted in
            # Redis at once), replica 1's first request finds it spent, and so does replica 0.
            answers = [_get(ports[n], "/v1/stock", token) for n in (0, 0, 0, 0, 1, 0)]
            assert [status for status, _ in answers] == [200, 200, 200, 200, 429, 429]
            assert [headers["ratelimit"].split(";")[1] for _, headers in answers] == [
                "r=3",
                "r=2",
                "r=1",
                "r=0",
                "r=0",
                "r=0",
            ]
            assert all(headers["ratelimit-policy"] == '"read";q=4;w=60' for _, headers in answers)
            assert int(answers[4][1]["retry-after"]) >= 1
            # Health stays open on both, whatever the budget.
            assert all(_get(port, "/healthz")[0] == 200 for port in ports)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()

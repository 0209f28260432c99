"""The inventory image, built by ``make images`` with podman and run as production runs it.

The build reuses the debootstrap base cached under var/images/ and podman's layer cache,
so only a first run on a machine pays for debootstrap and the pip install. From the image:
``logistics migrate inventory`` on a fresh PostgreSQL database of the host, then the web
(gunicorn) and the worker against the host's PostgreSQL and RabbitMQ (``--network host``,
a bus namespace of its own), a warehouse, an item, a receipt and a reservation through the
web, their events published by the worker, and ``podman stop`` ending the web through
SIGTERM (tini forwards it; gunicorn stops gracefully and exits 0) in a few seconds.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest

from logistics_shared.identity import Role
from logistics_shared.security import load_keyring, mint_token
from logistics_shared.settings import load_settings

from ..conftest import _delete_namespace
from ..embedded import eventually
from ..services import AMQP_URL, PG_URL, need_podman, need_postgres, need_service

pytestmark = [pytest.mark.e2e, pytest.mark.containers, pytest.mark.postgres, pytest.mark.rabbitmq]

ROOT = Path(__file__).resolve().parents[2]
IMAGE_TAG = "test"
IMAGE = f"localhost/logistics-inventory:{IMAGE_TAG}"
BASE_IMAGE = "localhost/debian-python:3.11-bookworm"
#: What podman needs on this kind of host: runc (crun fails on mixed cgroups), raised ulimits
#: (the default ones are refused), the host's network (PostgreSQL and RabbitMQ on loopback).
RUN = ["--runtime", "runc", "run", "--network", "host", "--ulimit", "nofile=4096:4096"]
RUN += ["--ulimit", "nproc=4096:4096"]
ADDRESS = {"name": "Main warehouse", "line1": "Dock 1", "city": "Rotterdam", "country": "NL"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _podman(podman: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([podman, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def _admin(sql: str) -> None:
    with psycopg.connect(f"{PG_URL.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def _request(port: int, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        res = conn.getresponse()
        text = res.read().decode()
        return res.status, json.loads(text) if text.startswith(("{", "[")) else text
    finally:
        conn.close()


def _answers(port: int, path: str) -> bool:
    try:
        return _request(port, "GET", path)[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def image() -> str:
    """``make images`` for inventory alone, as a developer runs it (the base and layers cached)."""
    podman = need_podman()
    cached = (ROOT / "var" / "images" / "debian-python-3.11-bookworm").is_dir()
    if not cached and _podman(podman, "image", "exists", BASE_IMAGE, check=False).returncode != 0:
        need_podman("debootstrap")  # make images debootstraps the base first
    log = ROOT / "var" / "images" / "test-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            ["make", "--no-print-directory", "images", "IMAGE_SERVICES=inventory", f"IMAGE_TAG={IMAGE_TAG}"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=30 * 60,
        )
    assert result.returncode == 0, f"make images failed; the end of {log}:\n{log.read_text()[-4000:]}"
    print(f"make images (inventory): {time.monotonic() - started:.1f} s")
    return podman


@pytest.fixture
def resources() -> Iterator[dict[str, str]]:
    """A fresh database and a bus namespace, both named lt_img_*, dropped/deleted afterwards."""
    need_postgres()
    need_service("RabbitMQ", "127.0.0.1", 5672)
    tag = uuid.uuid4().hex[:10]
    database, namespace = f"lt_img_{tag}", f"lt_img_{tag}"
    _admin(f'CREATE DATABASE "{database}"')
    try:
        yield {"tag": tag, "database": database, "namespace": namespace}
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _delete_namespace(AMQP_URL, namespace)


def test_inventory_image_migrates_serves_works_and_stops_on_sigterm(
    image: str, resources: dict[str, str], tmp_path: Path
) -> None:
    podman = image
    secret = secrets.token_urlsafe(36)  # 48 characters
    assert len(secret) == 48
    env_file = tmp_path / "inventory.env"
    env_file.write_text(
        f"LOGISTICS_INVENTORY_DATABASE_URL={PG_URL.rstrip('/')}/{resources['database']}\n"
        f"LOGISTICS_BROKER_URL={AMQP_URL}\n"
        f"LOGISTICS_BUS_NAMESPACE={resources['namespace']}\n"
        f"LOGISTICS_JWT_SECRET={secret}\n"
        "LOGISTICS_WEB_WORKERS=2\n"
    )
    run = [*RUN, "--env-file", str(env_file)]
    web, worker = f"lt_img_web_{resources['tag']}", f"lt_img_worker_{resources['tag']}"
    web_port, health_port = _free_port(), _free_port()

    config = json.loads(_podman(podman, "image", "inspect", IMAGE).stdout)[0]
    assert config["Config"]["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["Config"]["User"] == "10001:10001"
    # --format docker keeps the HEALTHCHECK (OCI images have none).
    healthcheck = config["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD" and "127.0.0.1:6541/healthz" in healthcheck[-1], healthcheck

    with ExitStack() as cleanup:
        cleanup.callback(_podman, podman, "rm", "--force", "--ignore", web, worker, check=False)

        migrate = _podman(
            podman, *run, "--rm", "--no-healthcheck", IMAGE, "logistics", "migrate", "inventory", timeout=180
        )
        assert "inventory: migrated to head" in migrate.stdout, migrate.stdout + migrate.stderr

        # The image's own health check, on the port this web listens on.
        health_cmd = [healthcheck[1], *healthcheck[2:-1], healthcheck[-1].replace(":6541/", f":{web_port}/")]
        _podman(
            podman, *run, "--detach", "--name", web, "--health-cmd", json.dumps(health_cmd),
            IMAGE, "logistics", "serve", "inventory", "--host", "127.0.0.1", "--port", str(web_port),
        )  # fmt: skip
        _podman(
            podman, *run, "--detach", "--name", worker, "--no-healthcheck",
            IMAGE, "logistics", "worker", "inventory", "--health-port", str(health_port),
        )  # fmt: skip

        def logs(name: str) -> str:
            result = _podman(podman, "logs", name, check=False)
            return result.stdout + result.stderr

        def running(name: str) -> bool:
            state = _podman(podman, "inspect", "--format", "{{.State.Running}}", name, check=False).stdout
            assert state.strip() == "true", f"{name} is not running:\n{logs(name)[-4000:]}"
            return True

        eventually(lambda: running(web) and _answers(web_port, "/readyz"), 90, what="the web's /readyz")
        assert _podman(podman, "healthcheck", "run", web, check=False).returncode == 0, logs(web)[-4000:]

        settings = load_settings("inventory", {"jwt_secret": secret}, environ={})
        token = mint_token(load_keyring(settings), role=Role.ADMIN, subject="image-test")
        steps: list[tuple[str, dict[str, Any]]] = [
            ("/v1/warehouses", {"code": "AMS", "name": "Amsterdam", "address": ADDRESS}),
            (
                "/v1/items",
                {
                    "sku": "IMG-1",
                    "name": "Image test item",
                    "unit_weight_g": 250,
                    "length_mm": 100,
                    "width_mm": 50,
                    "height_mm": 20,
                    "reorder_point": 3,
                },
            ),
            ("/v1/receipts", {"warehouse": "AMS", "sku": "IMG-1", "quantity": 5}),
            (
                "/v1/reservations",
                {"warehouse": "AMS", "reference": "SO-1", "lines": [{"sku": "IMG-1", "quantity": 2}]},
            ),
        ]
        for path, body in steps:
            status, answer = _request(web_port, "POST", path, body, token)
            assert status == 201, (path, status, answer, logs(web)[-4000:])

        eventually(
            lambda: running(worker) and _answers(health_port, "/readyz"), 90, what="the worker's /readyz"
        )

        def published() -> bool:
            with psycopg.connect(f"{PG_URL.rstrip('/')}/{resources['database']}") as conn:
                total, unsent = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
                ).fetchone()  # type: ignore[misc]
            return total > 0 and unsent == 0

        eventually(published, 60, what="the worker publishing the outbox to RabbitMQ")

        started = time.monotonic()
        _podman(podman, "stop", "--time", "10", web, timeout=60)
        elapsed = time.monotonic() - started
        state = json.loads(_podman(podman, "inspect", web).stdout)[0]["State"]
        output = logs(web)
        # SIGKILL after the 10 s stop timeout would be exit 137; gunicorn logs the TERM it handled.
        assert state["ExitCode"] == 0, (state, output[-4000:])
        assert elapsed < 6, f"podman stop took {elapsed:.1f} s: not a graceful SIGTERM stop\n{output[-4000:]}"
        assert "Handling signal: term" in output, output[-4000:]
        assert "Shutting down: Master" in output, output[-4000:]

        started = time.monotonic()
        _podman(podman, "stop", "--time", "10", worker, timeout=60)
        state = json.loads(_podman(podman, "inspect", worker).stdout)[0]["State"]
        assert state["ExitCode"] == 0 and time.monotonic() - started < 8, (state, logs(worker)[-4000:])
        assert "worker stopping" in logs(worker)
        print(f"web stopped by SIGTERM in {elapsed:.1f} s, exit 0")

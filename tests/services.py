"""Reaching the machine's PostgreSQL/RabbitMQ/Redis from tests.

A test that needs one skips when it is unreachable on a laptop, and fails
instead when ``LOGISTICS_REQUIRE_SERVICES=1`` (as ``.ci/run`` sets), so CI can
never pass by silently skipping the tests that matter.
"""

from __future__ import annotations

import os
import socket

import pytest

PG_URL = os.environ.get("LOGISTICS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
AMQP_URL = os.environ.get("LOGISTICS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("LOGISTICS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("LOGISTICS_REQUIRE_SERVICES", "") == "1"


def need_service(name: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = f"{name} at {host}:{port} is unreachable ({exc})"
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)


def need_postgres() -> None:
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    need_service("PostgreSQL", url.host or "127.0.0.1", url.port or 5432)


CHROMIUM = "/usr/bin/chromium"


def need_browser(executable: str = CHROMIUM) -> str:
    """The Chromium binary for Playwright to drive; skips (or fails under
    ``LOGISTICS_REQUIRE_SERVICES=1``, like :func:`need_service`) when the
    ``playwright`` package or the browser is missing."""
    message = None
    try:
        import playwright.sync_api  # noqa: F401 - only whether it is installed
    except ImportError as exc:
        message = f"the playwright package is not installed ({exc})"
    if message is None and not os.access(executable, os.X_OK):
        message = f"no Chromium at {executable} (apt-get install chromium)"
    if message is not None:
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return executable


def need_podman(*also: str) -> str:
    """The podman binary, with runc (and the other tools named in ``also``, e.g.
    ``debootstrap``) beside it; skips (or fails under ``LOGISTICS_REQUIRE_SERVICES=1``,
    like :func:`need_service`) when one is missing or podman cannot run here."""
    import shutil
    import subprocess

    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = {tool: shutil.which(tool, path=path) for tool in ("podman", "runc", *also)}
    missing = [tool for tool, where in found.items() if where is None]
    message = None
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install podman buildah debootstrap runc)"
    else:
        try:
            info = subprocess.run(
                [str(found["podman"]), "--runtime", "runc", "info"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if info.returncode != 0:
                message = f"podman cannot run here: {' '.join(info.stderr.split())[-300:]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            message = f"podman cannot run here ({exc})"
    if message is not None:
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return str(found["podman"])


def free_port_block() -> int:
    """An offset that makes 6541-6543 free ports (for a `logistics up --port-offset`)."""
    from .helpers.ports import free_block

    return free_block((0, 1, 2)) - 6541

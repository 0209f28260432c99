"""The embedded default as its users meet it: ``logistics up`` (SQLite files and the
in-process memory:// bus) in a subprocess, driven over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logistics_shared.service import discover

from .services import free_port_block

LOGISTICS = str(Path(sys.executable).with_name("logistics"))
#: Each service's port before ``--port-offset``: what ``logistics up`` serves, from the registry.
PORTS = {name: spec.port for name, spec in discover().items()}


def call(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    """Poll ``check`` until it returns something true; fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    source = what or getattr(check, "__qualname__", repr(check))
    raise AssertionError(f"timed out after {timeout} s waiting for {source}")


@dataclass
class Up:
    env: dict[str, str]
    var: Path
    offset: int

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service] + self.offset}"

    def token(self, *args: str) -> str:
        """``logistics token <args>`` against this run's key (``--role admin`` ...)."""
        return subprocess.run(
            [LOGISTICS, "token", *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout.strip()


@contextmanager
def logistics_up(tmp_path: Path, *, demo: bool = False, **settings: str) -> Iterator[Up]:
    """Start ``logistics up`` with ``LOGISTICS_<KEY>`` settings, wait until every service is
    ready, and stop it with SIGTERM afterwards (a clean stop is part of the test).

    ``demo=True`` runs ``up --demo`` and also waits until it reports the demo data loaded;
    its stdout and stderr go to ``tmp_path / "up.out"`` and ``"up.err"`` (the demo's polling
    logs more than a pipe nobody reads holds before the process blocks on it)."""
    offset = free_port_block()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
    env["LOGISTICS_VAR_DIR"] = str(tmp_path / "var")
    # As tests/conftest.py's apps: the limiter on, its quotas per second (schemathesis and the
    # demo loader never reach them), unless a test sets the window itself.
    env["LOGISTICS_RATE_LIMIT_WINDOW_SECONDS"] = "1"
    env.update({f"LOGISTICS_{key.upper()}": value for key, value in settings.items()})
    output, errors = tmp_path / "up.out", tmp_path / "up.err"
    with (
        output.open("w") if demo else nullcontext(subprocess.DEVNULL) as stdout,
        errors.open("w") if demo else nullcontext(subprocess.PIPE) as stderr,
    ):
        proc = subprocess.Popen(
            [LOGISTICS, "up", "--port-offset", str(offset), *(["--demo"] if demo else [])],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    up = Up(env, tmp_path / "var", offset)
    try:

        def ready() -> bool:
            try:
                for service in PORTS:
                    with urllib.request.urlopen(f"{up.url(service)}/readyz", timeout=2) as r:
                        assert r.status == 200
                return True
            except OSError:
                assert proc.poll() is None, proc.communicate()
                return False

        eventually(ready, 60)
        if demo:

            def loaded() -> bool:
                assert proc.poll() is None, output.read_text() + errors.read_text()[-2000:]
                return "demo data loaded" in output.read_text()

            eventually(loaded, 120)
        yield up
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (err if err is not None else errors.read_text())[-2000:]

"""The web servers as run for real: `logistics serve` and `pserve`, each in a subprocess.

waitress faces clients directly when run as documented (``--host 0.0.0.0``), so its
limits are part of the product: slow clients must not make a replica unreachable,
and pserve must read the same limits as the CLI. pserve also logs each line once.
"""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from logistics_shared.cli import _waitress_limits
from logistics_shared.settings import load_settings

from ..conftest import JWT_SECRET

# Real processes end to end.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
SERVICES = ("inventory", "shipping", "support")
#: What waitress's limits have to survive (twice its default connection_limit of 100).
SLOW_CLIENTS = 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("service", SERVICES)
def test_pserve_reads_the_same_waitress_limits_as_the_cli(service):
    # pserve builds its server from [server:main] alone; the values there must not drift
    # from the LOGISTICS_WAITRESS_* defaults `logistics serve` and `up` apply.
    parser = configparser.ConfigParser()
    parser.read(ROOT / "services" / service / "development.ini")
    server = parser["server:main"]
    expected = _waitress_limits(load_settings(service, {}, {}))
    for key, value in expected.items():
        assert key in server, f"[server:main] of {service} lacks {key}"
        assert server[key].strip().lower() == str(value).lower(), key


def test_the_waitress_limits_follow_the_settings():
    settings = load_settings(
        "inventory",
        {},
        {
            "LOGISTICS_WAITRESS_CONNECTION_LIMIT": "4321",
            "LOGISTICS_WAITRESS_CHANNEL_TIMEOUT": "12",
            "LOGISTICS_WAITRESS_CLEANUP_INTERVAL": "3",
        },
    )
    limits = _waitress_limits(settings)
    assert (limits["connection_limit"], limits["channel_timeout"], limits["cleanup_interval"]) == (
        4321,
        12,
        3,
    )
    assert limits["asyncore_use_poll"] is True


# --- a server in a subprocess ------------------------------------------------------
class Running:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
    env.update(
        LOGISTICS_INVENTORY_DATABASE_URL=database_url,
        LOGISTICS_JWT_SECRET=JWT_SECRET,
        LOGISTICS_VAR_DIR=str(tmp_path / "var"),
        LOGISTICS_ACCESS_LOG="true",
    )
    return env


def _pserve_ini(tmp_path: Path, port: int) -> Path:
    """The real development.ini, listening on ``port`` instead of 6541."""
    text = (ROOT / "services" / "inventory" / "development.ini").read_text()
    assert "listen = 127.0.0.1:6541" in text
    ini = tmp_path / "inventory.ini"
    ini.write_text(text.replace("listen = 127.0.0.1:6541", f"listen = 127.0.0.1:{port}"))
    return ini


@contextmanager
def running(how: str, database_url: str, tmp_path: Path) -> Iterator[Running]:
    port = _free_port()
    if how == "serve":
        # waitress faces clients directly only when run this way (gunicorn goes behind a proxy).
        argv = [str(BIN / "logistics"), "serve", "inventory", "--server", "waitress", "--port", str(port)]
    else:
        argv = [str(BIN / "pserve"), str(_pserve_ini(tmp_path, port))]
    log = tmp_path / f"{how}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=_environment(database_url, tmp_path),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Running(process, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"{how} exited with {process.returncode}:\n{server.output()}"
            try:
                with urllib.request.urlopen(server.url("/healthz"), timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{how} not answering /healthz after 60 s:\n{server.output()}"
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _hold_slow_connections(stack: ExitStack, port: int, count: int) -> None:
    """``count`` connections that send part of a request line or of the headers, and never finish."""
    for n in range(count):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        partial = (
            "GET /heal" if n % 2 else f"GET /healthz?slow={n} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: "
        )
        sock.sendall(partial.encode())


@pytest.mark.parametrize("how", ["serve", "pserve"])
def test_slow_clients_do_not_make_the_server_unreachable(how, database_factory, specs, tmp_path):
    database_url = database_factory(specs["inventory"], "sqlite")
    with running(how, database_url, tmp_path) as server, ExitStack() as slow:
        _hold_slow_connections(slow, server.port, SLOW_CLIENTS)
        # With waitress's defaults (100 connections, 120 s timeout) this request waits in the
        # listen backlog for minutes; the bound is generous, the latency is bench/slow_clients.py's.
        with urllib.request.urlopen(server.url("/healthz"), timeout=10) as response:
            assert response.status == 200
        assert server.process.poll() is None


def test_pserve_prints_each_log_line_once(database_factory, specs, tmp_path):
    database_url = database_factory(specs["inventory"], "sqlite")
    ids = [f"pserve-once-{n}" for n in range(3)]
    with running("pserve", database_url, tmp_path) as server:
        for rid in ids:
            request = urllib.request.Request(server.url("/healthz"), headers={"X-Request-ID": rid})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
    output = server.output()
    access = [line for line in output.splitlines() if "GET /healthz 200" in line]
    # The readiness polls before the three requests log too; each request exactly once.
    for rid in ids:
        assert sum(f"[{rid}]" in line for line in access) == 1, output
    # A second console handler (pserve's logging.basicConfig()) prints the same record in
    # its own format, "INFO:logistics.access:GET /healthz 200", without the request id.
    assert [line for line in access if "logistics.access: GET" not in line] == [], output

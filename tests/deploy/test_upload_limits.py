"""The balancers' body limits as a client meets them: real nginx and HAProxy processes,
rendered from the templates, in front of a loopback upstream that counts what reaches it.

Every path keeps the 1 MiB limit but inventory's CSV upload, ``/v1/imports``, whose
limit is LOGISTICS_IMPORT_MAX_BYTES (50 MiB) on every door.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ..helpers.ports import free_block
from .test_balancer_configs import NGINX_SERVER_NAME, checks, need_balancer

MIB = 1024 * 1024


class _Upstream(BaseHTTPRequestHandler):
    """Reads the whole body and answers how many bytes arrived (``/readyz``: 200)."""

    def do_GET(self) -> None:
        self._answer(200, {"status": "ready"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        received = 0
        while received < length:
            block = self.rfile.read(min(64 * 1024, length - received))
            if not block:
                break
            received += len(block)
        self._answer(202, {"received": received, "path": self.path})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(params=["nginx", "haproxy"])
def front_door(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    balancer = request.param
    binary = need_balancer(balancer)
    base = free_block((0, 1, 2))
    upstream = ThreadingHTTPServer(("127.0.0.1", base), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    # nginx buffers a body beyond client_body_buffer_size to a file there, from its worker
    # processes, which run as nobody when the test runs as root: a directory they can write.
    run_dir = Path(tempfile.mkdtemp(prefix="logistics-lb-"))
    run_dir.chmod(0o777)
    address = f"127.0.0.1:{base}"
    env = {
        "LOGISTICS_LB_INVENTORY_SERVERS": address,
        "LOGISTICS_LB_SHIPPING_SERVERS": address,
        "LOGISTICS_LB_SUPPORT_SERVERS": address,
        "LOGISTICS_LB_NGINX_LISTEN": f"127.0.0.1:{base + 1}",
        "LOGISTICS_LB_HAPROXY_BIND": f"127.0.0.1:{base + 1}",
        "LOGISTICS_LB_HAPROXY_STATS_BIND": f"127.0.0.1:{base + 2}",
        "LOGISTICS_LB_RUN_DIR": str(run_dir),
    }
    output = tmp_path / checks.TEMPLATES[balancer].stem
    done = checks.render(checks.TEMPLATES[balancer], output, env)
    assert done.returncode == 0, done.stderr
    if balancer == "nginx":
        output.write_text(NGINX_SERVER_NAME.sub(r"\g<1>127.0.0.1:\2", output.read_text()))
        argv = [binary, "-e", "stderr", "-p", str(run_dir), "-c", str(output), "-g", "daemon off;"]
    else:
        argv = [binary, "-db", "-f", str(output)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_routed(base + 1, proc)
        yield base + 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        upstream.shutdown()
        upstream.server_close()
        shutil.rmtree(run_dir, ignore_errors=True)


def _wait_until_routed(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            status, _ = post(port, "/v1/items", b"{}")
            if status == 202:  # HAProxy: only once its health check found the upstream
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the balancer to route /v1/items to the upstream")


def post(port: int, path: str, body: bytes, content_length: int | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "text/csv")
        conn.putheader("Content-Length", str(len(body) if content_length is None else content_length))
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(body)  # may be refused on the headers alone, before the body
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw or b"{}")
        except ValueError:
            raise AssertionError(f"{response.status}: {raw[:300]!r}") from None
    finally:
        conn.close()


def test_imports_take_50_mib_and_every_other_path_1_mib(front_door: int) -> None:
    two_mib = b"x" * (2 * MIB)
    status, body = post(front_door, "/v1/imports?kind=items", two_mib)
    assert (status, body) == (202, {"received": 2 * MIB, "path": "/v1/imports?kind=items"})
    status, body = post(front_door, "/v1/items", two_mib)
    assert (status, body["detail"]) == (413, "The request body exceeds 1 MiB.")
    # Over 50 MiB: refused on Content-Length, before 50 MiB are sent.
    status, body = post(front_door, "/v1/imports?kind=items", b"x" * 1024, content_length=50 * MIB + 1)
    assert (status, body["detail"]) == (413, "An import upload may be at most 50 MiB.")
    # At the limit: let through, whole.
    status, body = post(front_door, "/v1/imports?kind=items", b"x" * (50 * MIB))
    assert (status, body["received"]) == (202, 50 * MIB)

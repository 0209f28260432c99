"""The saga on the embedded default, driven over HTTP as a user would:
``logistics up`` (SQLite files, in-process memory:// bus) in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..inventory.conftest import ADDRESS
from ..services import free_port_block

LOGISTICS = str(Path(sys.executable).with_name("logistics"))


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


def eventually(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_saga_over_http_on_logistics_up(tmp_path):
    offset = free_port_block()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
    env["LOGISTICS_VAR_DIR"] = str(tmp_path / "var")
    env["LOGISTICS_RESERVATION_SWEEP_SECONDS"] = "0.5"
    proc = subprocess.Popen(
        [LOGISTICS, "up", "--port-offset", str(offset)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    inv, ship = f"http://127.0.0.1:{6541 + offset}", f"http://127.0.0.1:{6542 + offset}"
    try:

        def ready():
            try:
                with urllib.request.urlopen(f"{ship}/readyz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                assert proc.poll() is None, proc.communicate()
                return False

        eventually(ready, 60)
        token = subprocess.run(
            [LOGISTICS, "token", "--role", "admin"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert (
            call(
                "POST",
                f"{inv}/v1/warehouses",
                token,
                {"code": "AMS", "name": "Amsterdam", "address": ADDRESS},
            )[0]
            == 201
        )
        assert (
            call(
                "POST",
                f"{inv}/v1/items",
                token,
                {
                    "sku": "MUG",
                    "name": "Mug",
                    "unit_weight_g": 300,
                    "length_mm": 1,
                    "width_mm": 1,
                    "height_mm": 1,
                },
            )[0]
            == 201
        )
        assert (
            call("POST", f"{inv}/v1/receipts", token, {"warehouse": "AMS", "sku": "MUG", "quantity": 3})[0]
            == 201
        )

        def order(quantity):
            status, body = call(
                "POST",
                f"{ship}/v1/shipments",
                token,
                {
                    "reference": f"O-{quantity}",
                    "warehouse": "AMS",
                    "ship_to": ADDRESS,
                    "lines": [{"sku": "MUG", "quantity": quantity}],
                },
            )
            assert status == 201, body
            return body["id"]

        def status_of(shipment_id):
            return call("GET", f"{ship}/v1/shipments/{shipment_id}", token)[1]["status"]

        fits, too_big = order(2), order(5)
        eventually(lambda: status_of(fits) == "ready")
        eventually(lambda: status_of(too_big) == "on_hold")
        stock = call("GET", f"{inv}/v1/stock?sku=MUG", token)[1]["items"][0]
        assert (stock["on_hand"], stock["reserved"]) == (3, 2)
        assert call("POST", f"{ship}/v1/shipments/{fits}/cancel", token, {})[0] == 200
        eventually(lambda: call("GET", f"{inv}/v1/stock?sku=MUG", token)[1]["items"][0]["reserved"] == 0)
        assert (
            call("POST", f"{inv}/v1/receipts", token, {"warehouse": "AMS", "sku": "MUG", "quantity": 5})[0]
            == 201
        )
        assert call("POST", f"{ship}/v1/shipments/{too_big}/retry", token)[0] == 200
        eventually(lambda: status_of(too_big) == "ready")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]

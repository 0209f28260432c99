"""Three PostgreSQL databases holding the demo data, for benches of the hot reads.

The demo (``logistics demo``) is what the README's walk-through creates: warehouses, items,
stock, a carrier, shipments through the real saga (labels, tracking events), tickets. It is
loaded the way an operator would: ``logistics up`` on the bench databases (it migrates them)
and ``logistics demo`` over HTTP; then ``up`` is stopped and the databases are measured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import core, databases

SERVICES = ("inventory", "shipping", "support")
#: The services' default ports (6541-6543) plus this: away from a developer's own `make up`.
PORT_OFFSET = 1700


@dataclass(frozen=True)
class DemoData:
    urls: dict[str, str]
    env: dict[str, str]
    token: str
    sku: str
    warehouse: str
    shipment_id: str
    tracking_number: str


def _base(service: str) -> str:
    port = {"inventory": 6541, "shipping": 6542, "support": 6543}[service] + PORT_OFFSET
    return f"http://127.0.0.1:{port}"


def _first(url: str, token: str, what: str) -> dict[str, object]:
    status, body = core.http_json("GET", url, token=token)
    items = body.get("items") if isinstance(body, dict) else None
    if status != 200 or not items:
        raise SystemExit(f"the demo data has no {what}: GET {url} -> {status}: {body}")
    return items[0]


def _ids(token: str) -> tuple[str, str, str, str]:
    """A SKU, its warehouse, a shipment with a label and its tracking number, from the API."""
    stock = _first(f"{_base('inventory')}/v1/stock?limit=1", token, "stock")
    delivered = f"{_base('shipping')}/v1/shipments?status=delivered&limit=1"
    shipment = _first(delivered, token, "delivered shipment")
    status, full = core.http_json("GET", f"{_base('shipping')}/v1/shipments/{shipment['id']}", token=token)
    number = (full.get("label") or {}).get("tracking_number") if isinstance(full, dict) else None
    if status != 200 or not number:
        raise SystemExit(f"the delivered demo shipment has no tracking number: {status}: {full}")
    return str(stock["sku"]), str(stock["warehouse"]), str(shipment["id"]), str(number)


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"`logistics up` exited with {process.returncode} before {url} was ready")
        try:
            if core.http_request("GET", url, timeout=2)[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout:.0f}s")


@contextmanager
def demo_databases(var_dir: str, pg_url: str = core.PG_URL, threads: int = 4) -> Iterator[DemoData]:
    """Yield the demo data in fresh databases (``bench_reads_<service>``), dropped afterwards.

    ``LOGISTICS_BENCH_DB_PREFIX`` replaces ``bench_reads``, so two benches on demo data can run
    at once (each drops its databases at the start and the end)."""
    prefix = os.environ.get("LOGISTICS_BENCH_DB_PREFIX", "bench_reads")
    names = {service: f"{prefix}_{service}" for service in SERVICES}
    with databases.databases(pg_url, names) as urls:
        env = core.service_env(urls["inventory"], var_dir, threads)
        env.update({f"LOGISTICS_{s.upper()}_DATABASE_URL": url for s, url in urls.items()})
        up = subprocess.Popen(
            [core.logistics_cli(), "up", f"--port-offset={PORT_OFFSET}", f"--var-dir={var_dir}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=core.REPO,
        )
        try:
            for service in SERVICES:
                _wait_ready(up, f"{_base(service)}/readyz")
            print("loading the demo data over HTTP (logistics demo) ...", file=sys.stderr)
            core.run_cli(["demo", f"--port-offset={PORT_OFFSET}"], env)
            token = core.admin_token(env)
            sku, warehouse, shipment_id, number = _ids(token)
        finally:
            up.send_signal(signal.SIGTERM)
            try:
                _, err = up.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                up.kill()
                _, err = up.communicate()
            if up.returncode not in (0, -signal.SIGTERM):
                print(err.decode(errors="replace")[-3000:], file=sys.stderr)
        yield DemoData(urls, env, token, sku, warehouse, shipment_id, number)


@dataclass(frozen=True)
class HotRead:
    name: str
    service: str
    path: str


def hot_reads(data: DemoData) -> dict[str, HotRead]:
    """The five hot reads of issue 12, on the demo data: key -> (label, service, path)."""
    return {
        "stock": HotRead(
            "GET /v1/stock?sku&warehouse", "inventory", f"/v1/stock?sku={data.sku}&warehouse={data.warehouse}"
        ),
        "item": HotRead("GET /v1/items/{sku}", "inventory", f"/v1/items/{data.sku}"),
        "shipment": HotRead("GET /v1/shipments/{id}", "shipping", f"/v1/shipments/{data.shipment_id}"),
        "tickets": HotRead("GET /v1/tickets (first page)", "support", "/v1/tickets"),
        "tracking": HotRead(
            "GET /v1/tracking/{n} (uncached)", "shipping", f"/v1/tracking/{data.tracking_number}"
        ),
    }


HOT_READS = ("stock", "item", "shipment", "tickets", "tracking")

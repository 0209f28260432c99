"""Demo data (``logistics up --demo`` / ``logistics demo``): every demo state exists after the
real saga ran, a second load changes nothing, and the loader's helpers fail loudly.
"""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest
from click.testing import CliRunner

from logistics_shared.cli import main
from logistics_shared.demo import DemoContext, DemoError, run_demo
from logistics_shared.service import discover

from ..embedded import LOGISTICS, PORTS, Up, call, eventually, logistics_up
from ..services import free_port_block

# Real processes end to end.
pytestmark = pytest.mark.e2e

REFERENCES = {
    "DEMO-1001": "ready",
    "DEMO-1002": "on_hold",
    "DEMO-1003": "delivered",
    "DEMO-1004": "exception",
    "DEMO-1005": "cancelled",
}


def snapshot(up: Up, token: str) -> dict:
    """Everything the demo creates, as the APIs list it."""
    inv, ship, sup = up.url("inventory"), up.url("shipping"), up.url("support")

    def items(url: str) -> list[dict]:
        status, body = call("GET", url, token)
        assert status == 200, body
        return body["items"]

    return {
        "warehouses": sorted(w["code"] for w in items(f"{inv}/v1/warehouses")),
        "locations": sorted(loc["code"] for loc in items(f"{inv}/v1/warehouses/AMS/locations")),
        "items": sorted(i["sku"] for i in items(f"{inv}/v1/items?limit=200")),
        "stock": sorted(
            (level["warehouse"], level["sku"], level["on_hand"], level["reserved"])
            for level in items(f"{inv}/v1/stock?limit=200")
        ),
        "movements": len(items(f"{inv}/v1/movements?limit=200")),
        "carriers": [
            (c["code"], sorted(s["code"] for s in c["services"])) for c in items(f"{ship}/v1/carriers")
        ],
        "shipments": sorted(
            (s["reference"], s["status"], s["id"]) for s in items(f"{ship}/v1/shipments?limit=200")
        ),
        "tickets": sorted(
            (t["number"], t["status"], t["created_by"], t["shipment_id"] or "", tuple(t["tags"]))
            for t in items(f"{sup}/v1/tickets?limit=200")
        ),
    }


def test_demo_data_loads_every_state_and_loading_twice_changes_nothing(tmp_path):
    with logistics_up(tmp_path, demo=True) as up:
        token = up.token("--role", "admin")
        inv, sup = up.url("inventory"), up.url("support")

        def stock(sku: str, warehouse: str) -> dict:
            return call("GET", f"{inv}/v1/stock?sku={sku}&warehouse={warehouse}", token)[1]["items"][0]

        def issued() -> set[str]:
            return {m["sku"] for m in call("GET", f"{inv}/v1/movements?kind=issue", token)[1]["items"]}

        # Inventory's side of the last steps is asynchronous (the loaders wait on their own
        # service only): the labels' stock is issued, the cancelled shipment's released.
        eventually(lambda: issued() == {"BOOK-42", "MUG-01", "SOCKS-3P"})
        eventually(lambda: stock("BOTTLE-05", "RTM")["reserved"] == 0)
        first = snapshot(up, token)

        assert first["warehouses"] == ["AMS", "RTM"]
        assert len(first["items"]) == 6
        assert first["carriers"] == [("DEMOPOST", ["express", "standard"])]
        statuses = {reference: status for reference, status, _ in first["shipments"]}
        assert statuses == REFERENCES
        ids = {reference: shipment_id for reference, _, shipment_id in first["shipments"]}
        # The shortage: one lamp on hand, none reserved for the shipment that wanted two.
        assert (stock("LAMP-01", "AMS")["on_hand"], stock("LAMP-01", "AMS")["reserved"]) == (1, 0)
        # The ready shipment holds two mugs and a T-shirt.
        assert (stock("MUG-01", "AMS")["reserved"], stock("TEE-M", "AMS")["reserved"]) == (2, 1)

        # Support opened one ticket by itself for the shortage and one for the exception ...
        automatic = [t for t in first["tickets"] if t[2] == "service:support"]
        assert sorted((t[3], t[1]) for t in automatic) == sorted(
            [(ids["DEMO-1002"], "new"), (ids["DEMO-1004"], "new")]
        )
        assert {tag for t in automatic for tag in t[4]} >= {"reservation_failed", "exception"}
        # ... and the demo opened four by hand, in four states, on the demo shipments.
        manual = [t for t in first["tickets"] if t[2] == "admin:demo"]
        assert Counter(t[1] for t in manual) == Counter(["new", "open", "pending", "solved"])
        assert {t[3] for t in manual} <= set(ids.values())
        opened = next(t for t in manual if t[1] == "open")
        ticket_id = call("GET", f"{sup}/v1/tickets?status=open", token)[1]["items"][0]["id"]
        comments = call("GET", f"{sup}/v1/tickets/{ticket_id}/comments", token)[1]["items"]
        assert opened[3] == ids["DEMO-1003"] and [c["visibility"] for c in comments] == ["public"]
        # The read model followed shipping, tracking history included.
        view = call("GET", f"{sup}/v1/shipments/{ids['DEMO-1003']}", token)[1]
        assert view["status"] == "delivered"
        assert [t["status"] for t in view["tracking"]] == ["in_transit", "out_for_delivery", "delivered"]

        # A second load (the CLI, against the running services) succeeds and adds nothing.
        again = subprocess.run(
            [LOGISTICS, "demo", "--port-offset", str(up.offset)],
            env=up.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "demo data loaded (inventory, shipping, support)" in again.stdout
        assert snapshot(up, token) == first


def test_helpers_fail_loudly_with_the_problem_and_what_was_awaited(tmp_path):
    with logistics_up(tmp_path) as up:
        ctx = DemoContext({name: up.url(name) for name in PORTS}, up.token("--role", "admin"), timeout=0.3)
        with pytest.raises(DemoError, match=r"GET .*/v1/items/NOPE answered 404: .*'status': 404"):
            ctx.get("inventory", "/v1/items/NOPE")
        with pytest.raises(DemoError, match=r"answered 422: .*/quantity"):
            ctx.post("inventory", "/v1/receipts", {"warehouse": "AMS", "sku": "X", "quantity": 1.5})
        assert ctx.get("inventory", "/v1/items/NOPE", expect=(404,)).status == 404
        with pytest.raises(DemoError, match=r"timed out after 0.3s waiting for the moon to be cheese"):
            ctx.wait_for("the moon to be cheese", lambda: None)
        assert ctx.wait_for("a value", lambda: "ok") == "ok"


def test_nothing_running_is_an_error_naming_the_service():
    offset = free_port_block()
    urls = {name: f"http://127.0.0.1:{port + offset}" for name, port in PORTS.items()}
    ctx = DemoContext(urls, "no-token", timeout=0.3)
    with pytest.raises(DemoError, match=r"timed out .* inventory to be ready at http://127.0.0.1:\d+/readyz"):
        run_demo(discover().values(), ctx)
    with pytest.raises(DemoError, match="unreachable"):
        ctx.get("shipping", "/readyz")
    with pytest.raises(DemoError, match="not an http"):
        DemoContext({"inventory": "file:///etc/passwd"}, "t")


def test_every_service_registers_a_demo_loader_and_the_command_has_help():
    assert all(spec.demo is not None for spec in discover().values())
    for command in (["demo", "--help"], ["up", "--help"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 0, result.output
        assert "demo" in result.output.lower()
    assert "Idempotency-Key" in CliRunner().invoke(main, ["demo", "--help"]).output

"""Support on the embedded default, driven over HTTP as its users would:
``logistics up`` (SQLite files, in-process memory:// bus) in a subprocess.
A shortage and a carrier exception each open one ticket, the read model
follows shipping, an agent works a ticket, warehouse staff only read it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import urllib.request
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path

import orjson
import pytest

from shipping.domain.webhooks import signature

from ..embedded import call, eventually, logistics_up
from ..helpers.shipping import CARRIER, SECRET, SERVICE, event
from ..inventory.conftest import ADDRESS

# Real processes end to end.
pytestmark = pytest.mark.e2e

PARCEL = {"weight_g": 500, "length_mm": 100, "width_mm": 100, "height_mm": 100}


def send(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Message, dict]:
    """Status, headers and JSON body, for what ``call`` cannot say (If-Match, a webhook's signature)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def patch(url: str, token: str, body: dict, etag: str) -> tuple[int, Message, dict]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "If-Match": etag}
    return send("PATCH", url, json.dumps(body).encode(), headers)


def webhook(ship: str, body: dict) -> dict:
    payload = orjson.dumps(body)
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Carrier-Timestamp": stamp,
        "X-Carrier-Signature": signature(SECRET, stamp, payload),
    }
    status, _, reply = send("POST", f"{ship}/v1/carriers/POSTNL/webhook", payload, headers)
    assert status == 200, reply
    return reply


def handled(var: Path, handler: str) -> int:
    """Events support's ``handler`` committed (read from its SQLite file, as nothing else says)."""
    with contextlib.closing(sqlite3.connect(var / "support.sqlite3", timeout=5)) as db:
        return db.execute("SELECT COUNT(*) FROM inbox WHERE handler = ?", (handler,)).fetchone()[0]


def test_support_over_http_on_logistics_up(tmp_path):
    with logistics_up(tmp_path, sla_sweep_seconds="0.3") as up:
        inv, ship, sup = up.url("inventory"), up.url("shipping"), up.url("support")
        token = up.token
        admin = token("--role", "admin")
        agent = token("--role", "support_agent", "--subject", "ann")
        staff = token("--role", "warehouse_staff", "--warehouse", "AMS")
        outsider = token("--role", "warehouse_staff", "--warehouse", "RTM")

        for url, body in (
            (f"{inv}/v1/warehouses", {"code": "AMS", "name": "Amsterdam", "address": ADDRESS}),
            (
                f"{inv}/v1/items",
                {
                    "sku": "MUG",
                    "name": "Mug",
                    "unit_weight_g": 300,
                    "length_mm": 1,
                    "width_mm": 1,
                    "height_mm": 1,
                },
            ),
            (f"{inv}/v1/receipts", {"warehouse": "AMS", "sku": "MUG", "quantity": 3}),
            (f"{ship}/v1/carriers", CARRIER),
            (f"{ship}/v1/carriers/POSTNL/services", SERVICE),
        ):
            status, reply = call("POST", url, admin, body)
            assert status == 201, reply

        def order(reference: str, quantity: int) -> str:
            status, body = call(
                "POST",
                f"{ship}/v1/shipments",
                admin,
                {
                    "reference": reference,
                    "warehouse": "AMS",
                    "ship_to": {**ADDRESS, "postal_code": "1011 AB"},
                    "lines": [{"sku": "MUG", "quantity": quantity}],
                    "parcels": [PARCEL],
                },
            )
            assert status == 201, body
            return body["id"]

        def tickets(shipment_id: str) -> list[dict]:
            status, body = call("GET", f"{sup}/v1/tickets?shipment_id={shipment_id}", agent)
            assert status == 200, body
            return body["items"]

        def seen(shipment_id: str) -> dict:
            status, body = call("GET", f"{sup}/v1/shipments/{shipment_id}", agent)
            return body if status == 200 else {}

        # A shortage: on hold at shipping, one automatic ticket at support.
        short = order("SHORT", 5)
        eventually(lambda: seen(short).get("status") == "on_hold")
        (shortage,) = eventually(lambda: tickets(short))
        assert shortage["priority"] == "high" and "reservation_failed" in shortage["tags"]
        assert call("GET", f"{ship}/v1/shipments/{short}", admin)[1]["status"] == "on_hold"
        # Staff retry without new stock: inventory says so again, a re-sent cause for support.
        assert call("POST", f"{ship}/v1/shipments/{short}/retry", admin)[0] == 200
        eventually(lambda: handled(tmp_path / "var", "reservation_failed") == 2)

        # A stocked shipment is ready in the read model; then a carrier exception, posted twice.
        fits = order("FITS", 1)
        eventually(lambda: seen(fits).get("status") == "ready")
        status, label = call(
            "POST", f"{ship}/v1/shipments/{fits}/label", admin, {"carrier": "POSTNL", "service": "standard"}
        )
        assert status == 201, label
        number = label["tracking_number"]
        assert webhook(ship, event(number, "c-1", "in_transit"))["shipment_status"] == "in_transit"
        exception = {**event(number, "c-2", "exception"), "description": "Address not found"}
        assert webhook(ship, exception)["result"] == "accepted"
        assert webhook(ship, exception)["result"] == "duplicate"
        (trouble,) = eventually(lambda: tickets(fits))
        view = eventually(lambda: (v := seen(fits)).get("status") == "exception" and v)
        assert view["tracking_number"] == number
        assert [t["status"] for t in view["tracking"]] == ["in_transit", "exception"]
        assert [t["id"] for t in view["tickets"]] == [trouble["id"]]
        assert "exception" in trouble["tags"] and trouble["description"] == "Address not found"
        time.sleep(1.0)  # room for a wrong second ticket to show up
        assert [t["id"] for t in tickets(fits)] == [trouble["id"]]
        assert [t["id"] for t in tickets(short)] == [shortage["id"]]

        # The agent works the exception ticket; every change is guarded by If-Match.
        url = f"{sup}/v1/tickets/{trouble['id']}"
        status, headers, _ = send("GET", url, None, {"Authorization": f"Bearer {agent}"})
        assert status == 200
        etag = headers["ETag"]
        status, headers, opened = patch(url, agent, {"status": "open", "assignee": "support_agent:ann"}, etag)
        assert (status, opened["status"]) == (200, "open"), opened
        assert opened["first_responded_at"] is None, "opening is no answer to the customer"
        assert patch(url, agent, {"status": "pending"}, etag)[0] == 412, "a stale ETag is refused"
        status, comment = call(
            "POST",
            f"{url}/comments",
            agent,
            {"body": "We asked the carrier to try again.", "visibility": "public"},
        )
        assert status == 201, comment
        assert call("GET", url, agent)[1]["first_responded_at"] is not None
        etag = send("GET", url, None, {"Authorization": f"Bearer {agent}"})[1]["ETag"]
        status, headers, pending = patch(url, agent, {"status": "pending"}, etag)
        assert (status, pending["sla_state"]) == (200, "paused"), pending
        with contextlib.closing(sqlite3.connect(tmp_path / "var" / "support.sqlite3", timeout=5)) as db, db:
            # It has been waiting on the customer for two hours.
            db.execute(
                "UPDATE tickets SET sla_paused_at = datetime(sla_paused_at, '-2 hours') WHERE id = ?",
                (trouble["id"],),
            )
        status, headers, resumed = patch(url, agent, {"status": "open"}, headers["ETag"])
        assert status == 200 and resumed["status"] == "open" and resumed["sla_state"] != "paused", resumed
        moved = datetime.fromisoformat(resumed["resolution_due"]) - datetime.fromisoformat(
            opened["resolution_due"]
        )
        assert timedelta(hours=2) <= moved < timedelta(hours=2, minutes=1), "the paused time moves it"

        # Warehouse staff read the tickets of their warehouse's shipments, and open none.
        status, shown = call("GET", url, staff)
        assert (status, shown["id"]) == (200, trouble["id"])
        assert call("GET", url, outsider)[0] == 404
        subject = {
            "subject": "Mug broke",
            "description": "x",
            "type": "incident",
            "priority": "low",
            "queue": "shipments",
        }
        assert call("POST", f"{sup}/v1/tickets", staff, subject)[0] == 403
        status, late = call("POST", f"{sup}/v1/tickets", agent, subject)
        assert status == 201, late

        # Breaches, found by the sweep in ``up``: the new ticket missed its first response;
        # the exception ticket is past its resolution time but pending, so its clock is paused.
        status, _, paused = patch(url, agent, {"status": "pending"}, headers["ETag"])
        assert status == 200, paused
        with contextlib.closing(sqlite3.connect(tmp_path / "var" / "support.sqlite3", timeout=5)) as db, db:
            # Due the moment they were opened: a clock moved forward, for these two tickets only.
            db.execute("UPDATE tickets SET first_response_due = created_at WHERE id = ?", (late["id"],))
            db.execute("UPDATE tickets SET resolution_due = created_at WHERE id = ?", (trouble["id"],))

        def sla_state(ticket_id: str) -> str:
            return call("GET", f"{sup}/v1/tickets/{ticket_id}", agent)[1]["sla_state"]

        eventually(lambda: sla_state(late["id"]) == "breached")
        assert sla_state(trouble["id"]) == "paused"
        breached = call("GET", f"{sup}/v1/tickets?sla=breached", agent)[1]["items"]
        assert [t["id"] for t in breached] == [late["id"]]
        # The customer answers: the clock runs again, already late.
        etag = send("GET", url, None, {"Authorization": f"Bearer {agent}"})[1]["ETag"]
        assert patch(url, agent, {"status": "open"}, etag)[0] == 200
        eventually(lambda: sla_state(trouble["id"]) == "breached")

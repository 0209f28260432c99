"""Support under faults, on the machine's RabbitMQ and PostgreSQL: a worker
killed mid-message still opens exactly one ticket; a burst through shipping and
inventory leaves support's read model matching shipping; SLA breaches found by
the worker's sweep reach the wire once each.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import text

from logistics_shared.bus.worker import Worker

from ..bus import conftest as bus_fixtures
from ..bus.workers import queue_depth, queue_exists, start_worker, worker_env
from ..helpers.bus import publish_event, wait_until
from ..helpers.shipping import SECRET, event, post, setup_carriers
from ..helpers.support import FAST, tickets_for
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import ADDRESS, receive

pytestmark = [pytest.mark.postgres, pytest.mark.fault]

# Inventory, shipping and support, each with its worker in-process (a fixture of the e2e tests).
# What support's relay actually put on the wire.
tap = bus_fixtures.tap


# -- a support worker killed mid-message ------------------------------------------------


def exception_event(shipment_id: str) -> dict:
    return {
        "shipment_id": shipment_id,
        "reference": "ORDER-9",
        "warehouse": "AMS",
        "status": "exception",
        "previous_status": "in_transit",
        "tracking": {
            "status": "exception",
            "description": "Address not found",
            "location": "Amsterdam",
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "carrier",
        },
    }


def shortage_event(shipment_id: str) -> dict:
    return {
        "reference": shipment_id,
        "warehouse": "AMS",
        "reason": "shortage",
        "detail": "SKU-1: 2 requested, 0 available",
        "shortages": [{"sku": "SKU-1", "requested": 2, "available": 0}],
    }


#: cause -> (producer, event type, data, the support handlers subscribed to it)
CAUSES = {
    "exception": ("shipping", "shipment.exception", exception_event, ("shipment_view", "shipment_trouble")),
    "reservation_failed": (
        "inventory",
        "stock.reservation_failed",
        shortage_event,
        ("reservation_failed",),
    ),
}
TICKET_HANDLERS = {"shipment_trouble", "reservation_failed"}


def inbox(client, event_id: str) -> set[str]:
    """The handlers that committed ``event_id``."""
    with client.engine.connect() as conn:
        rows = conn.execute(text("SELECT handler FROM inbox WHERE event_id = :e"), {"e": event_id})
        return {r[0] for r in rows}


def tickets_created(client) -> list[dict]:
    with client.engine.connect() as conn:
        rows = conn.execute(text("SELECT payload FROM outbox WHERE event_type = 'ticket.created'")).all()
    return [orjson.loads(r[0]) for r in rows]


def automatic(client, shipment_id: str, cause: str) -> list[dict]:
    found = tickets_for(client, shipment_id)
    assert all("automatic" in t["tags"] and cause in t["tags"] for t in found), found
    return found


@pytest.mark.parametrize("cause", sorted(CAUSES))
@pytest.mark.parametrize("crash_point", ["before_commit", "after_commit"])
def test_a_support_worker_killed_mid_message_opens_one_ticket(
    service_client, rabbit, namespace, crash_point, cause, tmp_path
):
    support = service_client("support", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    producer, event_type, make_data, handlers = CAUSES[cause]
    queues = [f"{namespace}.support.{h}" for h in handlers]
    env = worker_env("support", support, rabbit, namespace)
    shipment = str(uuid.uuid4())
    data = make_data(shipment)

    first, first_log = start_worker("support", {**env, "LOGISTICS_TEST_CRASH_POINT": crash_point}, tmp_path)

    def declared() -> bool:
        assert first.poll() is None or first.returncode == 70, first_log.read_text()[-2000:]
        return all(queue_exists(q) for q in queues)

    try:
        # Declare the queues first so the event is not unroutable.
        wait_until(declared, timeout=60, what="queues declared")
        event_id = publish_event(rabbit, namespace, producer, event_type, data)
        assert first.wait(timeout=30) == 70, "the crash hook fired"
    finally:
        if first.poll() is None:
            first.kill()
    committed = inbox(support, event_id)
    if crash_point == "before_commit":
        assert committed == set()
    else:
        # The first handler to get the event committed, then the process died.
        assert len(committed) == 1 and committed <= set(handlers), committed
    opened = 1 if committed & TICKET_HANDLERS else 0
    assert len(tickets_for(support, shipment)) == opened

    second, second_log = start_worker("support", env, tmp_path)
    try:

        def handled_and_acked(event_id: str) -> bool:
            assert second.poll() is None, second_log.read_text()[-2000:]
            return inbox(support, event_id) == set(handlers) and all(queue_depth(q) == 0 for q in queues)

        # The redelivered message must be handled and acked, not merely already applied.
        wait_until(lambda: handled_and_acked(event_id), what="redelivered, handled and acked")
        time.sleep(1.0)  # room for a wrong second effect to show up
        (ticket,) = automatic(support, shipment, cause)
        assert ticket["priority"] == "high"
        created = tickets_created(support)
        assert [(e["data"]["ticket_id"], e["causation_id"]) for e in created] == [(ticket["id"], event_id)]

        # The producer re-sends the cause as a new event: handled, and still one ticket.
        again = publish_event(rabbit, namespace, producer, event_type, data)
        wait_until(lambda: handled_and_acked(again), what="re-sent event handled and acked")
        time.sleep(0.5)
        assert [t["id"] for t in automatic(support, shipment, cause)] == [ticket["id"]]
        assert len(tickets_created(support)) == 1
        if cause == "exception":
            view = support.as_("support_agent").get(f"/v1/shipments/{shipment}").json
            assert view["status"] == "exception"
            assert [t["id"] for t in view["tickets"]] == [ticket["id"]]
    finally:
        second.terminate()
        assert second.wait(timeout=30) == 0, f"SIGTERM is a graceful stop: {second_log.read_text()[-2000:]}"


# -- a burst through shipping and inventory ----------------------------------------------

PARCEL = {"weight_g": 500, "length_mm": 100, "width_mm": 100, "height_mm": 100}


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _tracking(entries: list[dict]) -> list[tuple]:
    return [
        (e["status"], e["description"], e["location"], _moment(e["occurred_at"]), e["source"])
        for e in entries
    ]


def mismatches(ship, support, ids: list[str]) -> dict[str, dict]:
    """Shipment id -> (support's read model, shipping's view) where they differ, field by field."""
    admin, agent = ship.as_(), support.as_("support_agent")
    found = {}
    for sid in ids:
        theirs = admin.get(f"/v1/shipments/{sid}").json
        expected = {
            "shipment_id": theirs["id"],
            "reference": theirs["reference"],
            "warehouse": theirs["warehouse"],
            "status": theirs["status"],
            "tracking_number": (theirs["label"] or {}).get("tracking_number"),
            "tracking": _tracking(theirs["tracking"]),
        }
        reply = agent.get(f"/v1/shipments/{sid}", expect_errors=True)
        if reply.status_int != 200:
            found[sid] = {"support": reply.status_int, "shipping": expected}
            continue
        mine = {**reply.json, "tracking": _tracking(reply.json["tracking"])}
        diff = {k: (mine.get(k), v) for k, v in expected.items() if mine.get(k) != v}
        linked = {t["id"] for t in tickets_for(support, sid)}
        if {t["id"] for t in mine["tickets"]} != linked:
            diff["tickets"] = (mine["tickets"], linked)
        if diff:
            found[sid] = diff
    return found


def automatic_tickets(support) -> list[tuple[str, str]]:
    items = support.as_("support_agent").get("/v1/tickets", {"limit": 200}).json["items"]
    causes = ("exception", "delivery_failed", "reservation_failed")
    return sorted((t["shipment_id"], next((c for c in causes if c in t["tags"]), "?")) for t in items)


def handled(support, handler: str) -> int:
    with support.engine.connect() as conn:
        return conn.execute(
            text("SELECT COUNT(*) FROM inbox WHERE handler = :h"), {"h": handler}
        ).scalar_one()


def test_after_a_burst_the_read_model_matches_shipping_and_each_cause_has_one_ticket(everything):
    inv, ship, support = everything["inventory"], everything["shipping"], everything["support"]
    setup_carriers(ship)
    receive(inv, "AMS", "SKU-1", 30)
    admin = ship.as_()

    def create(i: int, sku: str) -> str:
        body = {
            "reference": f"B-{i:02d}",
            "warehouse": "AMS",
            "lines": [{"sku": sku, "quantity": 1}],
            "ship_to": {**ADDRESS, "postal_code": "1011 AB"},
            "parcels": [PARCEL],
        }
        return admin.post_json("/v1/shipments", body).json["id"]

    # 10 short of stock (SKU-2 has none), 30 with stock; 5 of those cancelled at once.
    ids = [create(i, "SKU-2" if i < 10 else "SKU-1") for i in range(40)]
    short, cancelled, ready, labelled = ids[:10], ids[10:15], ids[15:20], ids[20:]
    for sid in cancelled:
        admin.post_json(f"/v1/shipments/{sid}/cancel", {"reason": "customer changed their mind"})

    def status(sid: str) -> str:
        return admin.get(f"/v1/shipments/{sid}").json["status"]

    wait_until(
        lambda: (
            all(status(s) == "on_hold" for s in short) and all(status(s) == "ready" for s in ready + labelled)
        ),
        what="the saga settled",
    )
    # Staff retry half the held ones: inventory fails again, a re-sent cause for support.
    for sid in short[:5]:
        admin.post(f"/v1/shipments/{sid}/retry")
    wait_until(
        lambda: handled(support, "reservation_failed") == 15, what="the repeated shortages reach support"
    )

    numbers = {
        sid: admin.post_json(f"/v1/shipments/{sid}/label", {"carrier": "POSTNL", "service": "standard"}).json[
            "tracking_number"
        ]
        for sid in labelled
    }
    # label only: 20-24; in transit: 25-29; exception: 30-34 (two then fail delivery); delivered: 35-39.
    scans = {}
    for n, sid in enumerate(labelled):
        group = n // 5
        if group == 1:
            scans[sid] = ["in_transit"]
        elif group == 2:
            scans[sid] = ["in_transit", "exception"] + (["delivery_failed"] if n % 5 < 2 else [])
        elif group == 3:
            scans[sid] = ["in_transit", "out_for_delivery", "delivered"]
    for sid, statuses in scans.items():
        for hour, scan in enumerate(statuses):
            body = {
                **event(numbers[sid], f"{sid}-{scan}", scan),
                "occurred_at": (datetime.now(UTC) + timedelta(seconds=hour)).isoformat(),
            }
            post(ship, body, secret=SECRET)
            if scan == "exception":
                post(ship, body, secret=SECRET)  # the carrier retries

    expected = sorted(
        [(sid, "reservation_failed") for sid in short]
        + [(sid, "exception") for sid, s in scans.items() if "exception" in s]
        + [(sid, "delivery_failed") for sid, s in scans.items() if "delivery_failed" in s]
    )
    with contextlib.suppress(AssertionError):
        wait_until(
            lambda: automatic_tickets(support) == expected and not mismatches(ship, support, ids),
            what="support caught up",
        )
    assert mismatches(ship, support, ids) == {}
    assert automatic_tickets(support) == expected
    time.sleep(1.0)  # room for a wrong second ticket to show up
    assert automatic_tickets(support) == expected
    statuses = sorted(status(s) for s in ids)
    assert statuses.count("delivered") == 5 and statuses.count("delivery_failed") == 2
    assert_inventory_invariants(inv.engine)
    assert statuses.count("cancelled") == 5 and statuses.count("on_hold") == 10


def test_a_carrier_scan_that_keeps_the_status_still_reaches_the_read_model(everything):
    """A second ``in_transit`` scan at the next hub is tracking history an agent needs."""
    inv, ship, support = everything["inventory"], everything["shipping"], everything["support"]
    setup_carriers(ship)
    receive(inv, "AMS", "SKU-1", 1)
    admin = ship.as_()
    body = {
        "reference": "SCANS",
        "warehouse": "AMS",
        "lines": [{"sku": "SKU-1", "quantity": 1}],
        "ship_to": {**ADDRESS, "postal_code": "1011 AB"},
        "parcels": [PARCEL],
    }
    sid = admin.post_json("/v1/shipments", body).json["id"]
    wait_until(lambda: admin.get(f"/v1/shipments/{sid}").json["status"] == "ready", what="ready")
    label = admin.post_json(f"/v1/shipments/{sid}/label", {"carrier": "POSTNL", "service": "standard"}).json
    for event_id, hub, later in (("s-1", "Amsterdam hub", 0), ("s-2", "Utrecht hub", 3)):
        scan = {
            **event(label["tracking_number"], event_id, "in_transit"),
            "location": hub,
            "occurred_at": (datetime.now(UTC) + timedelta(seconds=later)).isoformat(),
        }
        post(ship, scan, secret=SECRET)
    assert [t["location"] for t in admin.get(f"/v1/shipments/{sid}").json["tracking"]] == [
        "Amsterdam hub",
        "Utrecht hub",
    ]
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not mismatches(ship, support, [sid]), timeout=10, what="read model caught up")
    assert mismatches(ship, support, [sid]) == {}


# -- SLA breaches swept by a real worker, seen on the wire -------------------------------

TICKET = {
    "subject": "Where is my parcel?",
    "description": "Order 42",
    "type": "question",
    "priority": "urgent",
    "queue": "customers",
}


def breaches(wire) -> list[tuple[str, str]]:
    return sorted(
        (m["data"]["ticket_id"], m["data"]["kind"])
        for m in wire.messages
        if m["type"] == "ticket.sla_breached"
    )


def test_the_worker_sweeps_sla_breaches_onto_the_bus_once_and_not_while_pending(
    service_client, specs, rabbit, namespace, tap
):
    support = service_client(
        "support", "postgres", broker_url=rabbit, bus_namespace=namespace, sla_sweep_seconds=0.2, **FAST
    )
    agent = support.as_("support_agent")
    silent = agent.post_json("/v1/tickets", TICKET).json
    waiting = agent.post_json("/v1/tickets", {**TICKET, "subject": "Waiting on the customer"}).json
    url = f"/v1/tickets/{waiting['id']}"
    agent.patch_json(url, {"status": "open"})
    agent.post_json(f"{url}/comments", {"body": "Which address?", "visibility": "public"})
    assert agent.patch_json(url, {"status": "pending"}).json["sla_state"] == "paused"
    past = datetime.now(UTC) - timedelta(hours=1)
    with support.engine.begin() as conn:
        # The silent one missed its first response; the pending one is past its resolution due time.
        conn.execute(
            text("UPDATE tickets SET first_response_due = :t WHERE id = :i"), {"t": past, "i": silent["id"]}
        )
        conn.execute(
            text("UPDATE tickets SET resolution_due = :t WHERE id = :i"), {"t": past, "i": waiting["id"]}
        )
    wire = tap("support")
    worker = Worker(specs["support"], support.settings, support.registry)  # periodic tasks on
    worker.start()
    try:
        wait_until(lambda: (silent["id"], "first_response") in breaches(wire), what="first-response breach")
        time.sleep(1.0)  # five more sweeps: nothing again, and nothing for the paused clock
        assert breaches(wire) == [(silent["id"], "first_response")]
        assert agent.get(f"/v1/tickets/{silent['id']}").json["sla_state"] == "breached"
        assert agent.get(url).json["sla_state"] == "paused"

        # The customer answers: the clock runs again (moved by the seconds it was paused) and is late.
        etag = agent.get(url).headers["ETag"]
        agent.patch_json(url, {"status": "open"}, headers={"If-Match": etag})
        expected = sorted([(silent["id"], "first_response"), (waiting["id"], "resolution")])
        wait_until(lambda: (waiting["id"], "resolution") in breaches(wire), what="breach after resuming")
        time.sleep(1.0)
        assert breaches(wire) == expected
        message = next(
            m
            for m in wire.messages
            if m["type"] == "ticket.sla_breached" and m["data"]["ticket_id"] == waiting["id"]
        )
        assert message["producer"] == "support"
        assert message["data"]["priority"] == "urgent" and message["data"]["number"] == waiting["number"]
        assert agent.get(url).json["sla_state"] == "breached"
    finally:
        worker.shutdown()

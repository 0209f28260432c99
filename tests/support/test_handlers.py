"""Support's handlers fed envelopes by hand (no broker): the shipment read model
tolerates reordering, automatic tickets open once, deliveries leave a note.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from support import handlers

from ..helpers.support import deliver, envelope, state

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def sup(service_client, request):
    return service_client("support", request.param)


def tracked(shipment_id, status, previous, at, description=None):
    tracking = {
        "status": status,
        "description": description,
        "location": "Amsterdam",
        "occurred_at": at.isoformat(),
        "source": "carrier",
    }
    return state(shipment_id, status, previous_status=previous, tracking=tracking)


def label(shipment_id):
    return state(
        shipment_id,
        "label_purchased",
        carrier="POSTNL",
        service="STANDARD",
        tracking_number="3STEST123",
        reservation_id=str(uuid.uuid4()),
    )


def outbox(client) -> list[str]:
    with client.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


def test_read_model_tolerates_reordering(sup):
    sid = str(uuid.uuid4())
    in_transit = envelope(
        "shipment.status_changed",
        tracked(sid, "in_transit", "label_purchased", T0 + timedelta(hours=2)),
        T0 + timedelta(hours=2),
    )
    events = [
        envelope("shipment.ready", state(sid, "ready", reservation_id=str(uuid.uuid4())), T0),
        envelope("shipment.label_purchased", label(sid), T0 + timedelta(hours=1)),
        in_transit,
        envelope(
            "shipment.delivered",
            tracked(sid, "delivered", "in_transit", T0 + timedelta(hours=5)),
            T0 + timedelta(hours=5),
        ),
    ]
    # Newest first, then a duplicate of an old one.
    for event in [events[3], events[1], events[2], events[0], events[2]]:
        deliver(sup, handlers.shipment_view, event)
    view = sup.as_("support_agent").get(f"/v1/shipments/{sid}").json
    assert view["status"] == "delivered"
    assert view["tracking_number"] == "3STEST123"
    assert view["reference"] == "ORDER-1" and view["warehouse"] == "AMS"
    assert [t["status"] for t in view["tracking"]] == ["in_transit", "delivered"]
    assert view["tickets"] == []
    sup.as_("support_agent").get(f"/v1/shipments/{uuid.uuid4()}", status=404)
    sup.as_("support_agent").get("/v1/shipments/nope", status=404)
    sup.as_("warehouse_staff", "AMS").get(f"/v1/shipments/{sid}", status=403)  # see shipping


def test_the_shipment_version_orders_events_whatever_the_clocks_say(sup):
    """Two shipping replicas whose clocks disagree: a scan recorded at version 3 (in transit)
    carries a later timestamp than the delivery at version 4. The version decides."""
    sid = str(uuid.uuid4())
    delivered = envelope(
        "shipment.delivered",
        {**tracked(sid, "delivered", "in_transit", T0 + timedelta(hours=5)), "version": 4},
        T0 + timedelta(hours=5),
    )
    scan = envelope(
        "shipment.tracked",
        {
            **state(sid, "in_transit", version=3),
            "tracking": tracked(sid, "in_transit", "x", T0 + timedelta(hours=4))["tracking"],
        },
        T0 + timedelta(hours=5, seconds=2),  # the other replica's clock is ahead
    )
    for event in (delivered, scan):
        deliver(sup, handlers.shipment_view, event)
    view = sup.as_("support_agent").get(f"/v1/shipments/{sid}").json
    assert view["status"] == "delivered"
    assert [t["status"] for t in view["tracking"]] == ["in_transit", "delivered"]  # the scan is kept


def test_exception_opens_one_ticket_and_delivery_leaves_a_note(sup):
    sid = str(uuid.uuid4())
    exception = envelope(
        "shipment.exception", tracked(sid, "exception", "in_transit", T0, "Address not found"), T0
    )
    deliver(sup, handlers.shipment_view, exception)
    deliver(sup, handlers.shipment_trouble, exception)
    deliver(sup, handlers.shipment_trouble, exception)  # redelivered
    deliver(sup, handlers.shipment_trouble, {**exception, "id": uuid.uuid4()})  # re-sent
    agent = sup.as_("support_agent")
    (ticket,) = agent.get("/v1/tickets", {"shipment_id": sid}).json["items"]
    assert ticket["priority"] == "high" and ticket["type"] == "incident"
    assert ticket["description"] == "Address not found"
    assert ticket["created_by"] == "service:support"
    failed = envelope(
        "shipment.delivery_failed",
        tracked(sid, "delivery_failed", "exception", T0 + timedelta(hours=1)),
        T0 + timedelta(hours=1),
    )
    deliver(sup, handlers.shipment_trouble, failed)
    deliver(sup, handlers.shipment_trouble, failed)
    tickets = agent.get("/v1/tickets", {"shipment_id": sid}).json["items"]
    assert sorted(t["priority"] for t in tickets) == ["high", "normal"]
    view = agent.get(f"/v1/shipments/{sid}").json
    assert sorted(t["id"] for t in view["tickets"]) == sorted(t["id"] for t in tickets)
    # One of them gets solved; the delivery notes only the other, once.
    agent.patch_json(f"/v1/tickets/{ticket['id']}", {"status": "open"})
    agent.patch_json(f"/v1/tickets/{ticket['id']}", {"status": "solved"})
    delivered = envelope(
        "shipment.delivered",
        tracked(sid, "delivered", "out_for_delivery", T0 + timedelta(days=1)),
        T0 + timedelta(days=1),
    )
    deliver(sup, handlers.delivery_note, delivered)
    deliver(sup, handlers.delivery_note, delivered)
    other = next(t for t in tickets if t["id"] != ticket["id"])
    notes = agent.get(f"/v1/tickets/{other['id']}/comments").json["items"]
    assert [(n["visibility"], n["author"]) for n in notes] == [("internal", "service:support")]
    assert "delivered" in notes[0]["body"]
    assert agent.get(f"/v1/tickets/{ticket['id']}/comments").json["items"] == []
    assert outbox(sup).count("ticket.created") == 2


def test_reservation_failure_opens_one_high_ticket(sup):
    sid = str(uuid.uuid4())
    data = {
        "reference": sid,
        "warehouse": "AMS",
        "reason": "shortage",
        "detail": "SKU-1: 2 requested, 0 available",
        "shortages": [{"sku": "SKU-1", "requested": 2, "available": 0}],
    }
    failed = envelope("stock.reservation_failed", data, T0, producer="inventory")
    deliver(sup, handlers.reservation_failed, failed)
    deliver(sup, handlers.reservation_failed, {**failed, "id": uuid.uuid4()})
    (ticket,) = sup.as_().get("/v1/tickets", {"shipment_id": sid}).json["items"]
    assert ticket["priority"] == "high"
    assert ticket["description"].endswith("sku | requested | available\nSKU-1 | 2 | 0")
    assert "automatic" in ticket["tags"]
    # A reservation for something that is not a shipment opens nothing.
    other = envelope("stock.reservation_failed", {**data, "reference": "PO-7"}, T0, producer="inventory")
    deliver(sup, handlers.reservation_failed, other)
    assert len(sup.as_().get("/v1/tickets").json["items"]) == 1


def test_handlers_are_registered():
    subscribed = {(h.producer, e) for h in handlers.handlers() for e in h.events}
    for event in handlers.SHIPMENT_EVENTS:
        assert ("shipping", event) in subscribed
    assert ("inventory", "stock.reservation_failed") in subscribed


def test_staff_read_tickets_of_their_warehouses_shipments_and_search_works(sup):
    ams, rtm = str(uuid.uuid4()), str(uuid.uuid4())
    for sid, warehouse in ((ams, "AMS"), (rtm, "RTM")):
        data = {**tracked(sid, "exception", "in_transit", T0), "warehouse": warehouse}
        deliver(sup, handlers.shipment_view, envelope("shipment.exception", data, T0))
        deliver(sup, handlers.shipment_trouble, envelope("shipment.exception", data, T0))
    agent = sup.as_("support_agent")
    both = agent.get("/v1/tickets").json["items"]
    assert len(both) == 2
    mine = {t["id"]: t for t in both}
    ams_ticket = next(t for t in both if t["shipment_id"] == ams)
    agent.post_json(
        f"/v1/tickets/{ams_ticket['id']}/comments",
        {"body": "Carrier says: dog at the door 50%_off", "visibility": "internal"},
    )
    agent.post_json(
        f"/v1/tickets/{ams_ticket['id']}/comments",
        {"body": "We will redeliver tomorrow", "visibility": "public"},
    )
    staff = sup.as_("warehouse_staff", "AMS")
    assert [t["shipment_id"] for t in staff.get("/v1/tickets").json["items"]] == [ams]
    staff.get(f"/v1/tickets/{next(i for i, t in mine.items() if t['shipment_id'] == rtm)}", status=404)
    shown = staff.get(f"/v1/tickets/{ams_ticket['id']}/comments").json["items"]
    assert [c["visibility"] for c in shown] == ["public"], "internal notes stay with the support team"
    staff.patch_json(f"/v1/tickets/{ams_ticket['id']}", {"status": "open"}, status=403)
    # Search: subject or comment text, wildcards taken literally.
    assert [t["id"] for t in agent.get("/v1/tickets", {"q": "dog at the"}).json["items"]] == [
        ams_ticket["id"]
    ]
    assert [t["id"] for t in agent.get("/v1/tickets", {"q": "50%_off"}).json["items"]] == [ams_ticket["id"]]
    assert agent.get("/v1/tickets", {"q": "%%"}).json["items"] == []
    assert len(agent.get("/v1/tickets", {"q": "exception"}).json["items"]) == 2
    agent.get("/v1/tickets", {"q": "x"}, status=422)


def test_find_shipments_by_tracking_number_or_reference(sup):
    sid = str(uuid.uuid4())
    deliver(
        sup,
        handlers.shipment_view,
        envelope(
            "shipment.requested",
            {
                "shipment_id": sid,
                "reference": "ORDER-77",
                "warehouse": "AMS",
                "lines": [{"sku": "A", "quantity": 1}],
                "hold_until": None,
            },
            T0,
        ),
    )
    deliver(
        sup,
        handlers.shipment_view,
        envelope(
            "shipment.label_purchased",
            {
                **state(sid, "label_purchased"),
                "reference": "ORDER-77",
                "carrier": "POSTNL",
                "service": "standard",
                "tracking_number": "3STEST777",
                "reservation_id": None,
            },
            T0 + timedelta(minutes=1),
        ),
    )
    agent = sup.as_("support_agent")
    by_number = agent.get("/v1/shipments", {"tracking_number": "3STEST777"}).json["items"]
    assert [s["shipment_id"] for s in by_number] == [sid]
    assert [
        s["shipment_id"] for s in agent.get("/v1/shipments", {"reference": "ORDER-77"}).json["items"]
    ] == [sid]
    assert agent.get("/v1/shipments", {"reference": "nope"}).json["items"] == []
    # Without a filter: the most recently updated shipments, newest first.
    assert [s["shipment_id"] for s in agent.get("/v1/shipments").json["items"]] == [sid]
    sup.as_("warehouse_staff", "AMS").get("/v1/shipments", {"reference": "ORDER-77"}, status=403)


def label_of(sid, reference, tracking_number):
    return {**label(sid), "reference": reference, "tracking_number": tracking_number}


def requested(sid, reference, at=T0):
    data = {
        **state(sid, "awaiting_stock"),
        "reference": reference,
        "lines": [{"sku": "SKU-1", "quantity": 2}],
    }
    return envelope("shipment.requested", data, at)


def automatic_ticket(client, sid):
    (ticket,) = client.as_("support_agent").get("/v1/tickets", {"shipment_id": sid}).json["items"]
    return ticket


def test_the_exception_ticket_links_the_order_and_the_tracking_number_of_the_read_model(sup):
    """A carrier exception carries no tracking number: the read model knows it from the label."""
    sid = str(uuid.uuid4())
    deliver(sup, handlers.shipment_view, requested(sid, "R-1001"))
    deliver(
        sup,
        handlers.shipment_view,
        envelope("shipment.label_purchased", label_of(sid, "R-1001", "1ZTEST0001"), T0),
    )
    exception = envelope(
        "shipment.exception",
        {**tracked(sid, "exception", "in_transit", T0, "Address not found"), "reference": "R-1001"},
        T0 + timedelta(hours=1),
    )
    deliver(sup, handlers.shipment_trouble, exception)
    ticket = automatic_ticket(sup, sid)
    assert (ticket["order_reference"], ticket["tracking_number"]) == ("R-1001", "1ZTEST0001")
    assert ticket["subject"] == "Delivery exception: order R-1001 (1ZTEST0001)"
    assert ticket["description"] == "Address not found"
    assert (ticket["priority"], ticket["tags"]) == ("high", ["automatic", "exception"])


def test_the_failed_delivery_ticket_says_the_same_in_the_same_style(sup):
    sid = str(uuid.uuid4())
    deliver(
        sup,
        handlers.shipment_view,
        envelope("shipment.label_purchased", label_of(sid, "R-1002", "1ZTEST0002"), T0),
    )
    failed = envelope(
        "shipment.delivery_failed",
        {**tracked(sid, "delivery_failed", "out_for_delivery", T0, "Nobody home"), "reference": "R-1002"},
        T0 + timedelta(hours=1),
    )
    deliver(sup, handlers.shipment_trouble, failed)
    ticket = automatic_ticket(sup, sid)
    assert (ticket["order_reference"], ticket["tracking_number"]) == ("R-1002", "1ZTEST0002")
    assert ticket["subject"] == "Delivery failed: order R-1002 (1ZTEST0002)"
    assert ticket["description"] == "Nobody home"
    assert ticket["priority"] == "normal"


def test_the_shortage_ticket_names_the_order_and_lists_the_short_lines(sup):
    sid = str(uuid.uuid4())
    deliver(sup, handlers.shipment_view, requested(sid, "R-1003"))
    data = {
        "reference": sid,  # inventory reserves for the shipment's id
        "warehouse": "AMS",
        "reason": "shortage",
        "detail": "SKU-1: 2 requested, 0 available; SKU-2: 5 requested, 3 available",
        "shortages": [
            {"sku": "SKU-1", "requested": 2, "available": 0},
            {"sku": "SKU-2", "requested": 5, "available": 3},
        ],
    }
    deliver(
        sup, handlers.reservation_failed, envelope("stock.reservation_failed", data, T0, producer="inventory")
    )
    ticket = automatic_ticket(sup, sid)
    assert ticket["subject"] == "Stock shortage: order R-1003"
    assert (ticket["order_reference"], ticket["tracking_number"]) == ("R-1003", None)  # no label yet
    assert ticket["description"] == (
        "Stock could not be reserved at AMS.\n\nsku | requested | available\nSKU-1 | 2 | 0\nSKU-2 | 5 | 3"
    )


def test_a_ticket_opened_before_the_read_model_knew_the_shipment_is_filled_in_when_it_learns(sup):
    """The shortage can reach support before shipment.requested does (two queues): the ticket
    names the shipment by id, then gets the order reference, tracking number and subject."""
    sid = str(uuid.uuid4())
    data = {
        "reference": sid,
        "warehouse": "AMS",
        "reason": "shortage",
        "detail": "SKU-1: 2 requested, 0 available",
        "shortages": [{"sku": "SKU-1", "requested": 2, "available": 0}],
    }
    deliver(
        sup, handlers.reservation_failed, envelope("stock.reservation_failed", data, T0, producer="inventory")
    )
    early = automatic_ticket(sup, sid)
    assert early["subject"] == f"Stock shortage: shipment {sid}"
    assert early["order_reference"] is None
    deliver(sup, handlers.shipment_view, requested(sid, "R-1004"))
    ticket = automatic_ticket(sup, sid)
    assert (ticket["subject"], ticket["order_reference"]) == ("Stock shortage: order R-1004", "R-1004")
    assert ticket["version"] == early["version"] + 1  # an ETag taken before does not match any more
    deliver(
        sup,
        handlers.shipment_view,
        envelope("shipment.label_purchased", label_of(sid, "R-1004", "1ZTEST0004"), T0),
    )
    assert automatic_ticket(sup, sid)["tracking_number"] == "1ZTEST0004"
    # An agent's own subject is kept.
    agent = sup.as_("support_agent")
    current = automatic_ticket(sup, sid)
    agent.patch_json(
        f"/v1/tickets/{current['id']}",
        {"subject": "Customer waiting"},
        headers={"If-Match": f'"{current["version"]}"'},
    )
    assert automatic_ticket(sup, sid)["subject"] == "Customer waiting"

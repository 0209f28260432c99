"""Support with shipping and inventory workers on the machine's RabbitMQ and
PostgreSQL: a shortage and a carrier exception each open exactly one ticket,
and the read model follows shipping.
"""

from __future__ import annotations

import pytest

from ..helpers.bus import wait_until
from ..helpers.shipping import SECRET, event, post, setup_carriers
from ..helpers.support import tickets_for
from ..inventory.conftest import ADDRESS, receive

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


def test_a_shortage_and_a_carrier_exception_each_open_one_ticket(everything):
    inv, ship, support = everything["inventory"], everything["shipping"], everything["support"]
    agent = support.as_("support_agent")
    short = (
        ship.as_()
        .post_json(
            "/v1/shipments",
            {
                "reference": "SHORT",
                "warehouse": "AMS",
                "ship_to": ADDRESS,
                "lines": [{"sku": "SKU-1", "quantity": 9}],
            },
        )
        .json
    )
    wait_until(lambda: len(tickets_for(support, short["id"])) == 1, what="shortage ticket")
    ticket = tickets_for(support, short["id"])[0]
    assert ticket["priority"] == "high"
    view = agent.get(f"/v1/shipments/{short['id']}").json
    wait_until(
        lambda: agent.get(f"/v1/shipments/{short['id']}").json["status"] == "on_hold", what="read model"
    )
    assert view["reference"] == "SHORT"

    # A labelled shipment, then a carrier exception delivered twice by the carrier.
    setup_carriers(ship)
    receive(inv, "AMS", "SKU-1", 5)
    body = {
        "reference": "EXC",
        "warehouse": "AMS",
        "lines": [{"sku": "SKU-1", "quantity": 1}],
        "ship_to": {**ADDRESS, "postal_code": "1011 AB"},
        "parcels": [{"weight_g": 500, "length_mm": 100, "width_mm": 100, "height_mm": 100}],
    }
    shipment = ship.as_().post_json("/v1/shipments", body).json
    url = f"/v1/shipments/{shipment['id']}"
    wait_until(lambda: ship.as_().get(url).json["status"] == "ready", what="ready")
    number = (
        ship.as_()
        .post_json(f"{url}/label", {"carrier": "POSTNL", "service": "standard"})
        .json["tracking_number"]
    )
    post(ship, event(number, "c-1", "in_transit"), secret=SECRET)
    post(ship, event(number, "c-2", "exception"), secret=SECRET)
    post(ship, event(number, "c-2", "exception"), secret=SECRET)  # the carrier retries
    wait_until(lambda: len(tickets_for(support, shipment["id"])) == 1, what="exception ticket")
    wait_until(
        lambda: (
            agent.get(f"/v1/shipments/{shipment['id']}").json["status"] == ship.as_().get(url).json["status"]
        ),
        what="read model matches shipping",
    )
    assert len(tickets_for(support, shipment["id"])) == 1
    assert len(tickets_for(support, short["id"])) == 1
    # Each names the order, links what is known, in one subject style (the shortage ticket
    # may open before the read model knows the order: it is filled in when it does).
    linked = ("Stock shortage: order SHORT", "SHORT", None)
    wait_until(
        lambda: _links(tickets_for(support, short["id"])[0]) == linked,
        what=f"shortage ticket {linked}, got {_links(tickets_for(support, short['id'])[0])}",
    )
    assert "SKU-1 | 9 | 0" in tickets_for(support, short["id"])[0]["description"]
    exception = tickets_for(support, shipment["id"])[0]
    assert _links(exception) == (f"Delivery exception: order EXC ({number})", "EXC", number)


def _links(ticket):
    return ticket["subject"], ticket["order_reference"], ticket["tracking_number"]

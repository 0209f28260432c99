"""Support's webhooks: ticket events reach a support agent's endpoint, signed; nothing
internal leaves (an internal comment is no event, and a payload carries only its schema)."""

from __future__ import annotations

import pytest

from logistics_shared.bus.worker import Worker

from ..helpers.bus import wait_until
from .conftest import SETTINGS

pytestmark = pytest.mark.postgres
PUBLIC_TICKET = (
    "ticket_id",
    "number",
    "subject",
    "type",
    "priority",
    "status",
    "queue",
    "assignee",
    "shipment_id",
)

TICKET = {
    "subject": "Where is my parcel?",
    "description": "Ordered Monday.",
    "type": "question",
    "priority": "normal",
}


def test_ticket_events_reach_an_agents_endpoint_and_internal_notes_do_not(
    service_client, specs, rabbit, namespace, dispatcher, receiver
):
    support = service_client("support", "postgres", broker_url=rabbit, bus_namespace=namespace, **SETTINGS)
    agent = support.as_("support_agent", subject="ann")
    endpoint = agent.post_json(
        "/v1/support/webhook-endpoints",
        {"url": receiver.url("/desk"), "event_types": ["ticket.*"]},
        status=201,
    ).json
    receiver.secrets["/desk"] = endpoint["secret"]
    relay = Worker(specs["support"], support.settings, support.registry, consumers=0, periodic=False)
    relay.start()
    try:
        dispatcher(support)
        ticket = agent.post_json("/v1/tickets", TICKET, status=201).json
        agent.post_json(
            f"/v1/tickets/{ticket['id']}/comments",
            {"body": "SECRET-NOTE", "visibility": "internal"},
            status=201,
        )
        wait_until(lambda: receiver.at("/desk"), what="ticket.created")
        got = receiver.at("/desk")
        assert [r.body["type"] for r in got][:1] == ["ticket.created"]
        assert all(r.verified for r in got)
        assert got[0].body["data"]["number"] == ticket["number"]
        assert set(got[0].body["data"]) <= set(PUBLIC_TICKET)
        assert all("SECRET-NOTE" not in str(r.body) for r in receiver.received)
    finally:
        relay.shutdown()

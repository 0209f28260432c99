"""Support test steps: events delivered to support's handlers, ticket state, the e2e settings."""

from __future__ import annotations

import uuid

from logistics_shared.events import REGISTRY
from logistics_shared.outbox import Outbox


def deliver(client, func, envelope):
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session, session.begin():
        func(session, envelope, Outbox(session, table, producer="support", causation_id=str(envelope["id"])))


def envelope(type_, data, at, producer="shipping"):
    """An envelope as the consumer sees it: checked against the registered contract."""
    return REGISTRY.load_incoming(
        {
            "id": str(uuid.uuid4()),
            "type": type_,
            "version": 1,
            "occurred_at": at.isoformat(),
            "producer": producer,
            "correlation_id": "c",
            "data": data,
        }
    )


def state(shipment_id, status, **extra):
    return {"shipment_id": shipment_id, "reference": "ORDER-1", "warehouse": "AMS", "status": status, **extra}


FAST = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 3}


def tickets_for(support, shipment_id):
    return support.as_("support_agent").get("/v1/tickets", {"shipment_id": shipment_id}).json["items"]

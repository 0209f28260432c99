"""Shipping test data and steps: carriers and rate tables, shipments made ready as the saga
would, signed carrier webhooks, and delivering an event to a handler as the worker does."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime

import orjson
from sqlalchemy import text

from logistics_shared.events import REGISTRY
from logistics_shared.outbox import Outbox
from shipping.domain import shipments as shipment_domain
from shipping.domain.webhooks import signature

from ..inventory.conftest import ADDRESS

SECRET = "whsec-0123456789-abcdefghij"


CARRIER = {"code": "POSTNL", "name": "PostNL", "webhook_secret": SECRET}


def rate_table(**overrides):
    table = {
        "currency": "EUR",
        "dim_divisor": 5000,
        "zones": [
            {"name": "nl", "countries": ["NL"]},
            {"name": "ams", "countries": ["NL"], "postal_prefixes": ["10", "11"]},
            {"name": "eu", "countries": ["BE", "DE", "FR"]},
        ],
        "weight_bands": [
            {"max_g": 2000, "prices": {"nl": 495, "ams": 395, "eu": 995}},
            {"max_g": 10000, "prices": {"nl": 795, "ams": 695, "eu": 1595}},
            {"max_g": 30000, "prices": {"nl": 1295, "ams": 1195}},
        ],
    }
    return {**table, **overrides}


SERVICE = {"code": "standard", "name": "Standard", "rate_table": rate_table()}


# A second carrier whose only service serves Germany.
DHL = {"code": "DHL", "name": "DHL", "webhook_secret": "dhl-secret-0123456789", "tracking_prefix": "JD"}


DHL_EXPRESS = {
    "code": "express",
    "name": "Express",
    "rate_table": {
        "currency": "EUR",
        "dim_divisor": 4000,
        "zones": [{"name": "de", "countries": ["DE"]}],
        "weight_bands": [{"max_g": 5000, "prices": {"de": 1999}}],
    },
}


SMALL = {"weight_g": 1200, "length_mm": 200, "width_mm": 150, "height_mm": 100}  # dimensional 600 g


BULKY = {"weight_g": 1200, "length_mm": 400, "width_mm": 300, "height_mm": 200}  # dimensional 4800 g


_references = itertools.count(1)


def shipment_body(parcels=(SMALL,), warehouse="AMS", reference=None, **ship_to):
    """A shipment to create; a reference of its own unless one is named (a live shipment's
    reference again is a 409: shipping/domain/references.py)."""
    return {
        "reference": reference or f"ORDER-{next(_references)}",
        "warehouse": warehouse,
        "ship_to": {**ADDRESS, **ship_to},
        "lines": [{"sku": "SKU-1", "quantity": 2}],
        "parcels": list(parcels),
    }


def setup_carriers(client):
    admin = client.as_()
    admin.post_json("/v1/carriers", CARRIER, status=201)
    admin.post_json("/v1/carriers/POSTNL/services", SERVICE, status=201)
    admin.post_json("/v1/carriers", DHL, status=201)
    admin.post_json("/v1/carriers/DHL/services", DHL_EXPRESS, status=201)


def make_ready(client, shipment_id, reservation_id=None):
    """Run shipping's saga step for ``stock.reserved`` as the worker would."""
    reservation_id = reservation_id or str(uuid.uuid4())
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session, session.begin():
        shipment_domain.on_stock_reserved(
            session,
            Outbox(session, table, producer="shipping"),
            {"reference": shipment_id, "reservation_id": reservation_id},
            "test",
        )
    return reservation_id


def ready_shipment(client, **kwargs):
    shipment = client.as_().post_json("/v1/shipments", shipment_body(**kwargs), status=201).json
    make_ready(client, shipment["id"])
    return shipment["id"]


def labelled(client) -> tuple[str, str]:
    setup_carriers(client)
    shipment_id = ready_shipment(client, postal_code="1011AB")
    label = (
        client.as_()
        .post_json(
            f"/v1/shipments/{shipment_id}/label", {"carrier": "POSTNL", "service": "standard"}, status=201
        )
        .json
    )
    return shipment_id, label["tracking_number"]


def post(
    client,
    body: dict,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    carrier: str = "POSTNL",
    status: int = 200,
    raw: bytes | None = None,
    sign: bool = True,
):
    payload = raw if raw is not None else orjson.dumps(body)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": "application/json", "X-Carrier-Timestamp": stamp}
    if sign:
        headers["X-Carrier-Signature"] = signature(secret, stamp, payload)
    return client.anonymous.post(f"/v1/carriers/{carrier}/webhook", payload, headers=headers, status=status)


def event(number: str, event_id: str = "ev-1", status: str = "in_transit") -> dict:
    return {
        "event_id": event_id,
        "tracking_number": number,
        "status": status,
        "location": "Amsterdam sorting centre",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


SHIPMENT = {
    "reference": "ORDER-1",
    "warehouse": "AMS",
    "ship_to": ADDRESS,
    "lines": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}],
    "parcels": [{"weight_g": 1200, "length_mm": 300, "width_mm": 200, "height_mm": 100}],
}


def emitted(client, event_type):
    with client.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"), {"t": event_type}
        ).all()
    return [REGISTRY.load_incoming(orjson.loads(row[0])) for row in rows]


def deliver(client, service, func, envelope):
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session, session.begin():
        func(session, envelope, Outbox(session, table, producer=service, causation_id=str(envelope["id"])))

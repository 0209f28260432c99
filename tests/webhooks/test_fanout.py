"""Which endpoints an event fans out to: the class of rule (patterns, warehouses, enabled,
public or internal event, once per event) as one table, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from sqlalchemy import select, update

from logistics_shared.webhooks.fanout import Fanout

from .conftest import SETTINGS, subscribe

#: (label, the endpoint, the event's internal type, its warehouse, delivered?)
CASES = [
    ("exact type", {"event_types": ["shipment.ready"]}, "shipment.ready", "AMS", True),
    ("other type", {"event_types": ["shipment.ready"]}, "shipment.on_hold", "AMS", False),
    ("prefix", {"event_types": ["shipment.*"]}, "shipment.delivered", "AMS", True),
    ("everything", {"event_types": ["*"]}, "shipment.cancelled", "AMS", True),
    (
        "public name of an internal one",
        {"event_types": ["shipment.created"]},
        "shipment.requested",
        "AMS",
        True,
    ),
    ("own warehouse", {"event_types": ["*"], "warehouses": ["AMS"]}, "shipment.ready", "AMS", True),
    ("another warehouse", {"event_types": ["*"], "warehouses": ["RTM"]}, "shipment.ready", "AMS", False),
    ("one of several", {"event_types": ["*"], "warehouses": ["RTM", "AMS"]}, "shipment.ready", "AMS", True),
    ("disabled", {"event_types": ["*"], "enabled": False}, "shipment.ready", "AMS", False),
]


def _row(event_type: str, warehouse: str) -> SimpleNamespace:
    event_id = str(uuid.uuid4())
    data = {
        "shipment_id": str(uuid.uuid4()),
        "reference": "R-1",
        "warehouse": warehouse,
        "status": "ready",
        "version": 2,
        "reservation_id": str(uuid.uuid4()),
        "lines": [{"sku": "S", "quantity": 1}],
    }
    envelope = {"id": event_id, "type": event_type, "occurred_at": "2026-12-04T10:00:00+00:00", "data": data}
    return SimpleNamespace(event_id=event_id, event_type=event_type, payload=orjson.dumps(envelope).decode())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shipping(request, service_client):
    return service_client("shipping", request.param, **SETTINGS)


@pytest.mark.parametrize(
    ("label", "endpoint", "event_type", "warehouse", "wanted"), CASES, ids=[c[0] for c in CASES]
)
def test_an_event_reaches_the_endpoints_that_want_it(
    shipping, label, endpoint, event_type, warehouse, wanted
):
    made = subscribe(shipping, "https://hooks.example.com/x", **endpoint)
    tables = shipping.registry["logistics.platform_tables"].webhooks
    row = _row(event_type, warehouse)
    with shipping.registry["dbsession_factory"]() as session, session.begin():
        written = Fanout("shipping", tables).write(session, [row], datetime.now(UTC))
    assert written == (1 if wanted else 0), label
    with shipping.engine.connect() as conn:
        deliveries = conn.execute(
            select(tables.deliveries).where(tables.deliveries.c.endpoint_id == made["id"])
        ).all()
    assert len(deliveries) == (1 if wanted else 0), label


def test_internal_events_and_repeats_add_nothing(shipping):
    subscribe(shipping, "https://hooks.example.com/x", event_types=["*"])
    tables = shipping.registry["logistics.platform_tables"].webhooks
    internal = _row("stock.reserved", "AMS")  # inventory's, not a public shipping event
    public = _row("shipment.ready", "AMS")
    fanout = Fanout("shipping", tables)
    for _ in range(2):  # the same batch fanned out twice (a replayed relay batch) writes it once
        with shipping.registry["dbsession_factory"]() as session, session.begin():
            fanout.write(session, [internal, public], datetime.now(UTC))
    with shipping.engine.connect() as conn:
        messages = conn.execute(select(tables.messages)).all()
        deliveries = conn.execute(select(tables.deliveries)).all()
    assert [m.id for m in messages] == [public.event_id]
    assert len(deliveries) == 1
    body = orjson.loads(messages[0].payload)
    assert body["type"] == "shipment.ready" and "reservation_id" not in body["data"]
    assert set(body) == {"type", "timestamp", "data"}


def test_no_enabled_endpoint_writes_nothing(shipping):
    made = subscribe(shipping, "https://hooks.example.com/x", event_types=["*"])
    tables = shipping.registry["logistics.platform_tables"].webhooks
    with shipping.engine.begin() as conn:
        conn.execute(
            update(tables.endpoints).where(tables.endpoints.c.id == made["id"]).values(enabled=False)
        )
    with shipping.registry["dbsession_factory"]() as session, session.begin():
        assert (
            Fanout("shipping", tables).write(session, [_row("shipment.ready", "AMS")], datetime.now(UTC)) == 0
        )

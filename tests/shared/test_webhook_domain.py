"""The subscriptions' service layer without HTTP, as the CLI or the dispatcher would call it:
a session, an identity, a secret box and the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from logistics_shared.errors import Conflict, InvalidField, NotFound
from logistics_shared.identity import SYSTEM, Identity, Role
from logistics_shared.secretbox import SecretBox
from logistics_shared.webhooks.delivery_log import DeliveryLog
from logistics_shared.webhooks.domain import Subscriptions

from ..helpers.webhooks import add_delivery, endpoint_body


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def subscriptions(client) -> Subscriptions:
    box = SecretBox([Fernet(Fernet.generate_key())])
    tables = client.registry["logistics.platform_tables"].webhooks
    return Subscriptions("shipping", tables, box, client.settings)


def test_create_ping_and_redeliver_without_http(ship):
    subs = subscriptions(ship)
    now = datetime.now(UTC)
    factory = ship.registry["dbsession_factory"]
    with factory() as session, session.begin():
        created = subs.create(session, SYSTEM, endpoint_body("shipping"), now)
        assert (
            subs.box.decrypt(session.execute(subs.tables.endpoints.select()).one().secret)
            == created["secret"]
        )
        delivery = subs.ping(session, SYSTEM, created["id"], now)
        assert delivery["status"] == "pending" and delivery["next_attempt_at"] == now
    old = add_delivery(ship, created["id"], status="failed", created_at=now - timedelta(days=2))
    log = DeliveryLog(subs)
    with factory() as session, session.begin():
        assert log.redeliver_failed(session, SYSTEM, created["id"], now - timedelta(days=1), None, now) == 0
        assert log.redeliver_failed(session, SYSTEM, created["id"], now - timedelta(days=3), None, now) == 1
        with pytest.raises(Conflict):
            log.redeliver(session, SYSTEM, created["id"], old, now)
    with factory() as session:
        rows, cursor = log.list_(session, SYSTEM, created["id"], filters={}, cursor=None, limit=10)
        assert [r["id"] for r in rows] == [delivery["id"], old] and cursor is None


def test_staff_scope_in_the_service_layer(ship):
    subs = subscriptions(ship)
    now = datetime.now(UTC)
    ams = Identity("ams", Role.WAREHOUSE_STAFF, frozenset({"AMS"}))
    factory = ship.registry["dbsession_factory"]
    with factory() as session, session.begin():
        theirs = subs.create(session, ams, endpoint_body("shipping", warehouses=["AMS"]), now)
        everyone = subs.create(session, SYSTEM, endpoint_body("shipping"), now)
        with pytest.raises(InvalidField):
            subs.create(session, ams, endpoint_body("shipping"), now)
        with pytest.raises(NotFound):
            subs.load(session, everyone["id"], ams)
        assert [e["id"] for e in subs.list_(session, ams, cursor=None, limit=5)[0]] == [theirs["id"]]
        assert subs.load(session, theirs["id"], ams)["created_by"] == "warehouse_staff:ams"

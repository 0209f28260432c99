"""Every request body the OpenAPI documents carries an example, and the API accepts each
one as written (documented 2xx), posted in the order a person would follow the docs.

Only what cannot be known in advance is filled in: ids from earlier answers in the path,
and for the carrier webhook the real tracking number, the time and the signature.
"""

from __future__ import annotations

import copy
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from logistics_shared.outbox import Outbox
from logistics_shared.web.endpoint import ApiMeta
from shipping.domain import shipments as shipment_domain
from shipping.domain.webhooks import signature

from ..conftest import Client
from ..helpers.webhooks import add_delivery


def endpoints(client: Client) -> dict[tuple[str, str], ApiMeta]:
    found = {}
    for item in client.registry.introspector.get_category("views") or []:
        meta = getattr(item["introspectable"]["callable"], "__api__", None)
        if meta is not None:
            found[(meta.route, meta.method)] = meta
    return found


class Docs:
    """Posts the documented example of an operation and checks the documented status."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.metas = endpoints(client)
        self.sent: set[tuple[str, str]] = set()

    def example(self, route: str, method: str) -> Any:
        return copy.deepcopy(self.metas[(route, method)].example)

    def send(self, route: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        meta = self.metas[(route, method)]
        payload = self.example(route, method) if body is None else body
        app = self.client.as_()
        res = app.request(
            path,
            method=method,
            body=orjson.dumps(payload),
            content_type="application/json",
            expect_errors=True,
            **kw,
        )
        assert res.status_int == meta.status, f"{method} {path} with its example: {res.status} {res.text}"
        self.sent.add((route, method))
        return res.json

    def unsent(self) -> list[tuple[str, str]]:
        return sorted(
            key for key, meta in self.metas.items() if meta.body is not None and key not in self.sent
        )


def test_every_request_body_has_an_example(service_client):
    for name in ("inventory", "shipping", "support"):
        missing = [
            f"{meta.method} {meta.route}"
            for meta in endpoints(service_client(name)).values()
            if meta.body is not None and meta.example is None
        ]
        assert missing == [], f"{name}: operations without a request example: {missing}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


def test_inventory_accepts_its_examples(service_client, backend):
    docs = Docs(service_client("inventory", backend))
    docs.send("warehouses", "POST", "/v1/warehouses")
    rtm = {**docs.example("warehouses", "POST"), "code": "RTM", "name": "Rotterdam DC"}
    docs.send("warehouses", "POST", "/v1/warehouses", rtm)
    docs.send("warehouse", "PATCH", "/v1/warehouses/AMS")
    docs.send("locations", "POST", "/v1/warehouses/AMS/locations")
    docs.send("items", "POST", "/v1/items")
    docs.send("item", "PATCH", "/v1/items/TEE-M")
    docs.send("receipts", "POST", "/v1/receipts")
    docs.send("adjustments", "POST", "/v1/adjustments")
    docs.send("transfers", "POST", "/v1/transfers")
    first = docs.send("reservations", "POST", "/v1/reservations")
    docs.send("reservation_release", "POST", f"/v1/reservations/{first['id']}/release")
    second = docs.send("reservations", "POST", "/v1/reservations")
    docs.send("reservation_consume", "POST", f"/v1/reservations/{second['id']}/consume")
    assert docs.unsent() == []


def _saga_step(client: Client, step: Any, data: dict[str, Any]) -> None:
    """A step the worker would run on inventory's answer."""
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session, session.begin():
        step(session, Outbox(session, table, producer="shipping"), data, "test")


def test_shipping_accepts_its_examples(service_client, backend):
    client = service_client("shipping", backend)
    docs = Docs(client)
    carrier = docs.example("carriers", "POST")
    docs.send("carriers", "POST", "/v1/carriers")
    docs.send("carrier_services", "POST", f"/v1/carriers/{carrier['code']}/services")
    shipment = docs.send("shipments", "POST", "/v1/shipments")
    reserved = {"reference": shipment["id"], "reservation_id": str(uuid.uuid4())}
    _saga_step(client, shipment_domain.on_stock_reserved, reserved)
    label = docs.send("shipment_label", "POST", f"/v1/shipments/{shipment['id']}/label")
    docs.send("shipment_tracking", "POST", f"/v1/shipments/{shipment['id']}/tracking")
    event = {
        **docs.example("carrier_webhook", "POST"),
        "tracking_number": label["tracking_number"],
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    raw, stamp = orjson.dumps(event), str(int(time.time()))
    res = client.anonymous.post(
        f"/v1/carriers/{carrier['code']}/webhook",
        raw,
        headers={
            "Content-Type": "application/json",
            "X-Carrier-Timestamp": stamp,
            "X-Carrier-Signature": signature(carrier["webhook_secret"], stamp, raw),
        },
    )
    assert res.json == {"result": "accepted", "shipment_status": "out_for_delivery"}
    docs.sent.add(("carrier_webhook", "POST"))
    # The example again names the live shipment it made (a 409); others need references of
    # their own.
    again = client.as_().post_json("/v1/shipments", docs.example("shipments", "POST"), status=409)
    assert again.json["existing_shipment"]["id"] == shipment["id"]

    def another(reference: str) -> dict[str, Any]:
        return {**docs.example("shipments", "POST"), "reference": reference}

    to_cancel = docs.send("shipments", "POST", "/v1/shipments", another("ORDER-1002"))
    docs.send("shipment_cancel", "POST", f"/v1/shipments/{to_cancel['id']}/cancel")
    on_hold = docs.send("shipments", "POST", "/v1/shipments", another("ORDER-1003"))
    failed = {"reference": on_hold["id"], "reason": "insufficient_stock", "detail": "TEE-M: 0 of 2"}
    _saga_step(client, shipment_domain.on_reservation_failed, failed)
    docs.send("shipment_retry", "POST", f"/v1/shipments/{on_hold['id']}/retry")
    _webhooks(docs, "shipping")
    assert docs.unsent() == []


def test_support_accepts_its_examples(service_client, backend):
    docs = Docs(service_client("support", backend))
    ticket = docs.send("tickets", "POST", "/v1/tickets")
    docs.send("ticket", "PATCH", f"/v1/tickets/{ticket['id']}")
    docs.send("ticket_comments", "POST", f"/v1/tickets/{ticket['id']}/comments")
    docs.send("sla_policy", "PUT", "/v1/sla-policies/high")
    _webhooks(docs, "support")
    assert docs.unsent() == []


def _webhooks(docs: Docs, service: str) -> None:
    base = f"/v1/{service}/webhook-endpoints"
    endpoint = docs.send("webhook_endpoints", "POST", base)
    path = f"{base}/{endpoint['id']}"
    docs.send("webhook_endpoint", "PATCH", path)
    docs.send("webhook_endpoint_rotate_secret", "POST", f"{path}/rotate-secret")
    docs.send("webhook_endpoint_ping", "POST", f"{path}/ping")
    delivered = add_delivery(docs.client, endpoint["id"], status="delivered")
    docs.send("webhook_delivery_redeliver", "POST", f"{path}/deliveries/{delivered}/redeliver")
    docs.send("webhook_redeliver_failed", "POST", f"{path}/redeliver-failed")

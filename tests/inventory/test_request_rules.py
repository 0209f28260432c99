"""Request rules every service shares, shown on inventory: actions take an optional body,
an Idempotency-Key replay re-checks the caller's warehouses, Location never comes from Host."""

from __future__ import annotations

import http.client
import json

from ..badinput import waitress_server
from ..conftest import Client
from .conftest import receive

RESERVATION = {"warehouse": "AMS", "reference": "SO-1", "lines": [{"sku": "SKU-1", "quantity": 1}]}


def reserve(inv: Client) -> str:
    return inv.as_().post_json("/v1/reservations", RESERVATION, status=201).json["id"]


def test_an_action_takes_no_body_or_an_empty_object(inv):
    receive(inv, "AMS", "SKU-1", 5)
    admin = inv.as_()
    released = admin.post(f"/v1/reservations/{reserve(inv)}/release", status=200).json
    assert released["status"] == "released"
    consumed = admin.post_json(f"/v1/reservations/{reserve(inv)}/consume", {}, status=200).json
    assert consumed["status"] == "consumed"
    # A JSON content type with no bytes is still "no parameters" (what some clients send).
    rid = reserve(inv)
    res = admin.post(f"/v1/reservations/{rid}/release", b"", {"Content-Type": "application/json"})
    assert res.json["status"] == "released"


def test_every_post_without_a_body_schema_is_a_declared_action(specs, service_client):
    """One rule for all actions: none may ignore what a client sends (the endpoint
    decorator refuses a write without a body schema unless it is an action)."""
    found = {}
    for name in ("inventory", "shipping", "support"):
        client = service_client(name)
        for item in client.registry.introspector.get_category("views") or []:
            meta = getattr(item["introspectable"]["callable"], "__api__", None)
            if meta is not None and meta.action:
                assert meta.body is not None and meta.body.Meta.unknown == "raise", meta.route
                found[meta.route] = meta.method
    assert found == {
        "reservation_release": "POST",
        "reservation_consume": "POST",
        "shipment_cancel": "POST",
        "shipment_retry": "POST",
        # Outbound webhooks (shipping and support): actions on an endpoint and a delivery.
        "webhook_endpoint_rotate_secret": "POST",
        "webhook_endpoint_ping": "POST",
        "webhook_delivery_redeliver": "POST",
    }


def test_a_replay_rechecks_the_callers_warehouses(inv):
    receive(inv, "AMS", "SKU-1", 5)
    key = {"Idempotency-Key": "receipt-42"}
    body = {"warehouse": "AMS", "sku": "SKU-1", "quantity": 3}
    both = inv.as_("warehouse_staff", "AMS", "RTM", subject="alice")
    first = both.post_json("/v1/receipts", body, headers=key, status=201)
    # The same person, whose token no longer covers AMS: no stored response for them,
    # and the answer is exactly the one without a key.
    rtm_only = inv.as_("warehouse_staff", "RTM", subject="alice")
    refused = rtm_only.post_json("/v1/receipts", body, headers=key, status=422)
    without_key = rtm_only.post_json("/v1/receipts", body, status=422)
    assert (
        refused.json["errors"]
        == without_key.json["errors"]
        == [{"pointer": "/warehouse", "detail": refused.json["errors"][0]["detail"]}]
    )
    assert "Idempotent-Replayed" not in refused.headers
    # Still covered (or given more warehouses): the stored response, applied once.
    for token in (both, inv.as_("warehouse_staff", "AMS", "RTM", "BER", subject="alice")):
        again = token.post_json("/v1/receipts", body, headers=key, status=201)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.body == first.body
    level = inv.as_().get("/v1/stock?warehouse=AMS&sku=SKU-1").json["items"][0]
    assert level["on_hand"] == 8


def _post(port: int, path: str, body: dict, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    res = conn.getresponse()
    res.read()
    conn.close()
    return res


def test_location_is_relative_whatever_the_host_header_says(inv):
    receive(inv, "AMS", "SKU-1", 5)
    headers = {
        "Authorization": f"Bearer {inv.token()}",
        "Content-Type": "application/json",
        "Host": "evil.example",
        "Idempotency-Key": "loc-1",
    }
    with waitress_server(inv.wsgi) as port:
        first = _post(port, "/v1/reservations", RESERVATION, headers)
        replay = _post(port, "/v1/reservations", RESERVATION, {**headers, "Host": "other.example"})
    assert first.status == replay.status == 201
    location = first.getheader("Location")
    assert location.startswith("/v1/reservations/"), location
    assert replay.getheader("Location") == location
    assert replay.getheader("Idempotent-Replayed") == "true"

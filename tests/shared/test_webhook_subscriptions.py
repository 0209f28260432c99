"""The webhook subscriptions API of shipping and support over HTTP: endpoints (the secret
shown once, stored encrypted, rotated), enabling, deleting with the log, ping, the
delivery log's filters and pages, redelivery; staff scoping in shipping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select, text

from logistics_shared.webhooks.catalogue import PING, Catalogue
from logistics_shared.webhooks.schemas import subscribable, webhook_schemas

from ..helpers.webhooks import WEBHOOK_SERVICES, add_delivery, collection, count_rows, endpoint_body, tables


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


@pytest.fixture(params=WEBHOOK_SERVICES)
def service(request):
    return request.param


@pytest.fixture
def client(service_client, service, backend):
    return service_client(service, backend)


def manager(client, service):
    return client.as_("admin" if service == "shipping" else "support_agent")


def stored(client, endpoint_id):
    e = tables(client).endpoints
    with client.engine.connect() as conn:
        return conn.execute(select(e).where(e.c.id == endpoint_id)).one()


def test_secretbox_is_in_the_registry(client):
    assert "logistics.secretbox" in client.registry


def test_create_get_list_and_the_secret_shown_once(client, service):
    app = manager(client, service)
    res = app.post_json(collection(service), endpoint_body(service, description="ERP"), status=201)
    created = res.json
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) == 6 + 32
    assert res.headers["ETag"] == '"1"'
    assert res.headers["Location"] == f"{collection(service)}/{created['id']}"
    assert created["enabled"] is True and created["disabled_reason"] is None
    assert created["created_by"].endswith(":test-" + ("admin" if service == "shipping" else "support_agent"))
    shown = {k: v for k, v in created.items() if k != "secret"}
    got = app.get(f"{collection(service)}/{created['id']}")
    assert got.json == shown and got.headers["ETag"] == '"1"'
    assert app.get(collection(service)).json == {"items": [shown], "next_cursor": None}
    # Stored only as a Fernet token that the service's box opens; nowhere in plain text.
    row = stored(client, created["id"])
    assert row.secret != secret and secret not in row.secret
    assert client.registry["logistics.secretbox"].decrypt(row.secret) == secret
    with client.engine.connect() as conn:
        dump = repr([conn.execute(text(f"SELECT * FROM {t}")).all() for t in ("webhook_endpoints", "outbox")])
    assert secret not in dump


def test_patterns_are_de_duplicated_and_the_document_lists_them(client, service):
    app = manager(client, service)
    prefix = "shipment" if service == "shipping" else "ticket"
    body = endpoint_body(service, event_types=[f"{prefix}.*", "*", f"{prefix}.*"])
    assert app.post_json(collection(service), body).json["event_types"] == [f"{prefix}.*", "*"]
    document = app.get("/openapi.json").json
    create = document["components"]["schemas"]["EndpointCreate"]
    enum = create["properties"]["event_types"]["items"]["enum"]
    assert enum == subscribable(Catalogue(service))
    assert "*" in enum and f"{prefix}.*" in enum and "webhook_endpoint.disabled" in enum
    assert ("warehouses" in create["properties"]) is (service == "shipping")
    assert all(Catalogue(service).pattern_problem(p) is None for p in enum)


def test_every_accepted_pattern_is_in_the_enum():
    """The enum is exactly what the validator accepts, for each pattern a client may try."""
    for service in WEBHOOK_SERVICES:
        catalogue = Catalogue(service)
        field = webhook_schemas(service).create().fields["event_types"].inner
        tried = {"*", "**", "shipment*", "ticket.*.x", "x.*", "webhook_endpoint.*", "shipment.*", "ticket.*"}
        tried |= set(catalogue.types)
        for pattern in tried:
            try:
                field.deserialize(pattern)
                accepted = True
            except Exception:
                accepted = False
            assert accepted is (pattern in subscribable(catalogue)), (service, pattern)


def test_patch_if_match_enable_and_disable(client, service):
    app = manager(client, service)
    created = app.post_json(collection(service), endpoint_body(service)).json
    url = f"{collection(service)}/{created['id']}"
    res = app.patch_json(
        url, {"description": "Shop", "url": "https://hooks.example.com/v2"}, headers={"If-Match": '"1"'}
    )
    assert res.json["description"] == "Shop" and res.json["url"] == "https://hooks.example.com/v2"
    assert res.headers["ETag"] == '"2"'
    stale = app.patch_json(url, {"description": "x"}, headers={"If-Match": '"1"'}, status=412)
    assert stale.json["current_etag"] == '"2"'
    assert app.patch_json(url, {"description": "Shop"}).headers["ETag"] == '"2"'  # nothing changed
    off = app.patch_json(url, {"enabled": False}).json
    assert off["enabled"] is False and off["disabled_reason"] == "manual" and off["disabled_at"]
    # As the dispatcher leaves an endpoint it disabled: failing since some time.
    e = tables(client).endpoints
    with client.engine.begin() as conn:
        since = datetime.now(UTC) - timedelta(days=3)
        conn.execute(
            e.update().where(e.c.id == created["id"]).values(disabled_reason="failing", failing_since=since)
        )
    assert app.patch_json(url, {"enabled": False}).json["disabled_reason"] == "failing"  # already off
    on = app.patch_json(url, {"enabled": True}).json
    assert on["enabled"] is True
    assert (on["disabled_reason"], on["disabled_at"], on["failing_since"]) == (None, None, None)
    assert app.patch_json(url, {"description": None}).json["description"] is None


def test_created_disabled(client, service):
    created = (
        manager(client, service).post_json(collection(service), endpoint_body(service, enabled=False)).json
    )
    assert created["enabled"] is False and created["disabled_reason"] == "manual"


def test_url_rules(client, service):
    app = manager(client, service)
    for url, word in (
        ("http://hooks.example.com/x", "https://"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://localhost/x", "loopback"),
        ("https://10.1.2.3/x", "private"),
        ("https://169.254.169.254/latest", "metadata"),
        ("https://user:pw@hooks.example.com/x", "password"),
    ):
        res = app.post_json(collection(service), endpoint_body(service, url=url), status=422)
        assert [e["pointer"] for e in res.json["errors"]] == ["/url"], url
        assert word in res.json["errors"][0]["detail"], (url, res.json)
    created = app.post_json(collection(service), endpoint_body(service)).json
    res = app.patch_json(
        f"{collection(service)}/{created['id']}", {"url": "https://192.168.1.1/"}, status=422
    )
    assert [e["pointer"] for e in res.json["errors"]] == ["/url"]


def test_loopback_allowed_by_the_settings(service_client, service):
    client = service_client(service, webhook_allow_http="true", webhook_allow_networks="127.0.0.0/8")
    app = manager(client, service)
    app.post_json(collection(service), endpoint_body(service, url="http://127.0.0.1:8080/hook"), status=201)
    app.post_json(collection(service), endpoint_body(service, url="http://10.0.0.1/hook"), status=422)


def test_rotate_secret_keeps_the_old_one_for_the_grace_period(client, service):
    app = manager(client, service)
    created = app.post_json(collection(service), endpoint_body(service)).json
    before = stored(client, created["id"])
    res = app.post(f"{collection(service)}/{created['id']}/rotate-secret")
    rotated = res.json
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["version"] == 2 and res.headers["ETag"] == '"2"'
    grace = client.settings.webhook_secret_grace_hours
    until = datetime.fromisoformat(rotated["previous_secret_until"])
    assert abs(until - datetime.now(UTC) - timedelta(hours=grace)) < timedelta(minutes=1)
    after = stored(client, created["id"])
    box = client.registry["logistics.secretbox"]
    assert after.previous_secret == before.secret
    assert box.decrypt(after.secret) == rotated["secret"]
    assert box.decrypt(after.previous_secret) == created["secret"]
    assert "secret" not in app.get(f"{collection(service)}/{created['id']}").json


def test_ping_queues_one_delivery_to_that_endpoint_only(client, service):
    app = manager(client, service)
    first = app.post_json(collection(service), endpoint_body(service, event_types=["*"])).json
    other = app.post_json(collection(service), endpoint_body(service, event_types=["*"])).json
    res = app.post_json(f"{collection(service)}/{first['id']}/ping", {}, status=202)
    delivery = res.json
    assert delivery["status"] == "pending" and delivery["attempt_count"] == 0
    assert delivery["endpoint_id"] == first["id"] and delivery["event_type"] == PING
    assert count_rows(client, "deliveries", endpoint_id=other["id"]) == 0
    detail = app.get(f"{collection(service)}/{first['id']}/deliveries/{delivery['id']}").json
    assert detail["payload"]["type"] == PING
    assert detail["payload"]["data"]["endpoint_id"] == first["id"]
    assert detail["attempts"] == []
    assert [d["id"] for d in app.get(f"{collection(service)}/{first['id']}/deliveries").json["items"]] == [
        delivery["id"]
    ]
    app.patch_json(f"{collection(service)}/{first['id']}", {"enabled": False})
    problem = app.post(f"{collection(service)}/{first['id']}/ping", status=409).json
    assert problem["current_status"] == "disabled"


def test_delivery_log_filters_pages_and_attempts(client, service):
    app = manager(client, service)
    endpoint = app.post_json(collection(service), endpoint_body(service)).json
    base = f"{collection(service)}/{endpoint['id']}/deliveries"
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ids = []
    event = "shipment.ready" if service == "shipping" else "ticket.created"
    other_event = "shipment.delivered" if service == "shipping" else "ticket.assigned"
    for n in range(7):
        status = ("failed", "delivered", "pending")[n % 3]
        ids.append(
            add_delivery(
                client,
                endpoint["id"],
                status=status,
                event_type=other_event if n == 6 else event,
                created_at=start + timedelta(hours=n),
            )
        )
    newest_first = list(reversed(ids))
    assert [d["id"] for d in app.get(base).json["items"]] == newest_first
    seen, cursor = [], None
    while True:
        page = app.get(base, {"limit": 3, **({"cursor": cursor} if cursor else {})}).json
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    failed = app.get(base, {"status": "failed"}).json["items"]
    assert [d["id"] for d in failed] == [ids[6], ids[3], ids[0]]
    assert [d["id"] for d in app.get(base, {"event_type": other_event}).json["items"]] == [ids[6]]
    ranged = app.get(
        base,
        {
            "since": (start + timedelta(hours=2)).isoformat(),
            "until": (start + timedelta(hours=4)).isoformat(),
        },
    )
    assert [d["id"] for d in ranged.json["items"]] == [ids[3], ids[2]]
    detail = app.get(f"{base}/{ids[0]}").json
    assert detail["attempt_count"] == 1 and detail["status"] == "failed"
    (attempt,) = detail["attempts"]
    assert attempt["outcome"] == "http_error" and attempt["status_code"] == 500
    assert attempt["latency_ms"] == 12 and attempt["response_body"] == "oops" and attempt["error"] is None
    other = app.post_json(collection(service), endpoint_body(service)).json
    app.get(f"{collection(service)}/{other['id']}/deliveries/{ids[0]}", status=404)
    assert app.get(f"{collection(service)}/{other['id']}/deliveries").json["items"] == []


def test_redeliver_one_and_all_failed_since(client, service):
    app = manager(client, service)
    endpoint = app.post_json(collection(service), endpoint_body(service)).json
    base = f"{collection(service)}/{endpoint['id']}"
    start = datetime(2026, 11, 1, tzinfo=UTC)
    failed = [
        add_delivery(client, endpoint["id"], status="failed", created_at=start + timedelta(hours=n))
        for n in range(4)
    ]
    delivered = add_delivery(client, endpoint["id"], status="delivered", created_at=start)
    pending = add_delivery(client, endpoint["id"], status="pending", created_at=start)
    again = app.post(f"{base}/deliveries/{delivered}/redeliver", status=202).json
    assert again["status"] == "pending" and again["finished_at"] is None and again["attempt_count"] == 1
    d = tables(client).deliveries
    with client.engine.connect() as conn:
        row = conn.execute(select(d).where(d.c.id == delivered)).one()
    assert row.claim is None and row.claimed_until is None and row.next_attempt_at is not None
    problem = app.post(f"{base}/deliveries/{pending}/redeliver", status=409).json
    assert problem["current_status"] == "pending"
    app.post(f"{base}/deliveries/{uuid.uuid4()}/redeliver", status=404)
    since, until = start + timedelta(hours=1), start + timedelta(hours=3)
    res = app.post_json(
        f"{base}/redeliver-failed", {"since": since.isoformat(), "until": until.isoformat()}, status=202
    )
    assert res.json == {"redelivered": 2}
    statuses = {i: s["status"] for s in app.get(f"{base}/deliveries").json["items"] for i in [s["id"]]}
    assert [statuses[i] for i in failed] == ["failed", "pending", "pending", "failed"]
    assert app.post_json(f"{base}/redeliver-failed", {"since": start.isoformat()}).json == {"redelivered": 2}
    bad = app.post_json(
        f"{base}/redeliver-failed", {"since": until.isoformat(), "until": since.isoformat()}, status=422
    )
    assert [e["pointer"] for e in bad.json["errors"]] == ["/until"]
    app.patch_json(base, {"enabled": False})
    app.post_json(f"{base}/redeliver-failed", {"since": start.isoformat()}, status=409)
    app.post(f"{base}/deliveries/{failed[0]}/redeliver", status=409)


def test_delete_takes_the_log_with_it(client, service):
    app = manager(client, service)
    gone = app.post_json(collection(service), endpoint_body(service)).json
    kept = app.post_json(collection(service), endpoint_body(service)).json
    shared = add_delivery(client, kept["id"])
    message = stored_message(client, shared)
    add_delivery(client, gone["id"], message_id=message)  # one event for both endpoints
    add_delivery(client, gone["id"])
    app.post(f"{collection(service)}/{gone['id']}/ping", status=202)
    app.delete(f"{collection(service)}/{gone['id']}", headers={"If-Match": '"9"'}, status=412)
    res = app.delete(f"{collection(service)}/{gone['id']}", status=204)
    assert res.body == b""
    app.get(f"{collection(service)}/{gone['id']}", status=404)
    app.delete(f"{collection(service)}/{gone['id']}", status=404)
    assert count_rows(client, "deliveries", endpoint_id=gone["id"]) == 0
    assert count_rows(client, "deliveries") == 1 and count_rows(client, "attempts") == 1
    assert count_rows(client, "messages") == 1  # the shared one stays, the others went
    assert count_rows(client, "messages", id=message) == 1


def stored_message(client, delivery_id):
    d = tables(client).deliveries
    with client.engine.connect() as conn:
        return conn.execute(select(d.c.message_id).where(d.c.id == delivery_id)).scalar_one()


def test_idempotent_create(client, service):
    app = manager(client, service)
    headers = {"Idempotency-Key": "hook-1"}
    first = app.post_json(collection(service), endpoint_body(service), headers=headers, status=201)
    again = app.post_json(collection(service), endpoint_body(service), headers=headers, status=201)
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    app.post_json(collection(service), endpoint_body(service, description="x"), headers=headers, status=422)
    assert len(app.get(collection(service)).json["items"]) == 1


def test_event_types_list_the_catalogue(client, service):
    listed = manager(client, service).get(f"/v1/{service}/webhook-event-types").json
    catalogue = Catalogue(service)
    assert [e["type"] for e in listed] == [e.type for e in catalogue.events] + [PING]
    assert all(e["version"] == 1 and e["description"] for e in listed)


def test_endpoints_pages(client, service):
    app = manager(client, service)
    made = [app.post_json(collection(service), endpoint_body(service)).json["id"] for _ in range(5)]
    page = app.get(collection(service), {"limit": 2}).json
    rest = app.get(collection(service), {"limit": 10, "cursor": page["next_cursor"]}).json
    assert [e["id"] for e in page["items"] + rest["items"]] == made and rest["next_cursor"] is None


# -- warehouse staff (shipping) ---------------------------------------------------------------
@pytest.fixture
def ship(service_client, backend):
    return service_client("shipping", backend)


def test_staff_manage_only_endpoints_of_their_warehouses(ship):
    admin, ams, both = (
        ship.as_(),
        ship.as_("warehouse_staff", "AMS"),
        ship.as_("warehouse_staff", "AMS", "RTM"),
    )
    path = collection("shipping")
    everything = admin.post_json(path, endpoint_body("shipping")).json  # no warehouse limit
    rtm = admin.post_json(path, endpoint_body("shipping", warehouses=["RTM"])).json
    mixed = both.post_json(path, endpoint_body("shipping", warehouses=["AMS", "RTM"])).json
    own = ams.post_json(path, endpoint_body("shipping", warehouses=["AMS", "AMS"])).json
    assert own["warehouses"] == ["AMS"] and own["created_by"] == "warehouse_staff:test-warehouse_staff"
    assert [e["id"] for e in ams.get(path).json["items"]] == [own["id"]]
    assert [e["id"] for e in both.get(path).json["items"]] == [rtm["id"], mixed["id"], own["id"]]
    assert {e["id"] for e in admin.get(path).json["items"]} == {
        everything["id"],
        rtm["id"],
        mixed["id"],
        own["id"],
    }
    for hidden in (everything, rtm, mixed):
        ams.get(f"{path}/{hidden['id']}", status=404)
        ams.patch_json(f"{path}/{hidden['id']}", {"description": "mine"}, status=404)
        ams.post(f"{path}/{hidden['id']}/ping", status=404)
        ams.get(f"{path}/{hidden['id']}/deliveries", status=404)
        ams.delete(f"{path}/{hidden['id']}", status=404)
    for body in (
        endpoint_body("shipping"),
        endpoint_body("shipping", warehouses=None),
        endpoint_body("shipping", warehouses=["RTM"]),
    ):
        res = ams.post_json(path, body, status=422)
        assert [e["pointer"] for e in res.json["errors"]] == ["/warehouses"]
    foreign = ams.post_json(path, endpoint_body("shipping", warehouses=["AMS", "RTM"]), status=422).json
    unknown = ams.post_json(path, endpoint_body("shipping", warehouses=["AMS", "XYZ"]), status=422).json
    assert foreign["errors"][0]["detail"].replace("RTM", "?") == unknown["errors"][0]["detail"].replace(
        "XYZ", "?"
    )
    ams.patch_json(f"{path}/{own['id']}", {"warehouses": ["RTM"]}, status=422)
    ams.patch_json(f"{path}/{own['id']}", {"warehouses": None}, status=422)
    assert (
        ams.patch_json(f"{path}/{own['id']}", {"description": "AMS dock"}).json["description"] == "AMS dock"
    )
    ams.post(f"{path}/{own['id']}/rotate-secret", status=200)
    ams.delete(f"{path}/{own['id']}", status=204)


def test_a_staff_replay_rechecks_the_warehouses(ship):
    path, headers = collection("shipping"), {"Idempotency-Key": "staff-hook"}
    body = endpoint_body("shipping", warehouses=["AMS"])
    ship.as_("warehouse_staff", "AMS").post_json(path, body, headers=headers, status=201)
    # The same subject, whose token no longer covers AMS: no replay of the stored answer.
    ship.as_("warehouse_staff", "RTM").post_json(path, body, headers=headers, status=422)


def test_the_payload_is_stored_as_json(client, service):
    app = manager(client, service)
    endpoint = app.post_json(collection(service), endpoint_body(service)).json
    delivery = app.post(f"{collection(service)}/{endpoint['id']}/ping").json
    m = tables(client).messages
    with client.engine.connect() as conn:
        payload = conn.execute(select(m.c.payload).where(m.c.id == delivery["message_id"])).scalar_one()
    body = orjson.loads(payload)
    assert set(body) == {"type", "timestamp", "data"} and body["data"]["endpoint_id"] == endpoint["id"]


def test_an_idempotent_create_stores_no_plaintext_secret(client, service):
    app = manager(client, service)
    headers = {"Idempotency-Key": "sealed"}
    secret = app.post_json(collection(service), endpoint_body(service), headers=headers).json["secret"]
    with client.engine.connect() as conn:
        stored_answers = [
            bytes(r[0]) for r in conn.execute(text("SELECT response_body FROM idempotency_keys"))
        ]
    assert stored_answers and all(secret.encode() not in answer for answer in stored_answers)

"""Tickets and comments over HTTP: creation, listing, ETag/If-Match, lifecycle, roles, input."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

TICKET = {
    "subject": "Where is my parcel?",
    "description": "Ordered last week, nothing arrived.",
    "type": "question",
    "priority": "normal",
    "queue": "customers",
    "tags": ["wismo", "nl", "wismo"],
}


@pytest.fixture(params=["sqlite", "postgres"])
def sup(service_client, request):
    return service_client("support", request.param)


def outbox(client) -> list[str]:
    with client.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


def test_create_get_and_list(sup):
    agent = sup.as_("support_agent")
    shipment_id = str(uuid.uuid4())
    res = agent.post_json("/v1/tickets", {**TICKET, "shipment_id": shipment_id}, status=201)
    body = res.json
    assert body["status"] == "new"
    assert body["tags"] == ["wismo", "nl"]
    assert body["shipment_id"] == shipment_id
    assert body["created_by"] == "support_agent:test-support_agent"
    assert res.headers["ETag"] == '"1"'
    assert res.headers["Location"].endswith(f"/v1/tickets/{body['id']}")
    second = agent.post_json("/v1/tickets", {**TICKET, "priority": "urgent", "queue": "vip"}).json
    assert second["number"] == body["number"] + 1
    got = agent.get(f"/v1/tickets/{body['id']}")
    assert got.json == body and got.headers["ETag"] == '"1"'
    assert len(agent.get("/v1/tickets").json["items"]) == 2
    assert [t["id"] for t in agent.get("/v1/tickets", {"priority": "urgent"}).json["items"]] == [second["id"]]
    assert [t["id"] for t in agent.get("/v1/tickets", {"queue": "vip"}).json["items"]] == [second["id"]]
    linked = agent.get("/v1/tickets", {"shipment_id": shipment_id}).json["items"]
    assert [t["id"] for t in linked] == [body["id"]]
    assert agent.get("/v1/tickets", {"status": "open"}).json["items"] == []
    page = agent.get("/v1/tickets", {"limit": 1}).json
    rest = agent.get("/v1/tickets", {"limit": 1, "cursor": page["next_cursor"]}).json
    assert page["items"][0]["id"] != rest["items"][0]["id"] and rest["next_cursor"] is None
    assert outbox(sup) == ["ticket.created", "ticket.created"]


def test_idempotency_key_replays_the_creation(sup):
    agent = sup.as_("support_agent")
    headers = {"Idempotency-Key": "k-1"}
    first = agent.post_json("/v1/tickets", TICKET, headers=headers, status=201).json
    again = agent.post_json("/v1/tickets", TICKET, headers=headers, status=201).json
    assert first == again
    agent.post_json("/v1/tickets", {**TICKET, "subject": "other"}, headers=headers, status=422)
    assert len(agent.get("/v1/tickets").json["items"]) == 1


def test_patch_with_if_match_and_assignment(sup):
    agent = sup.as_("support_agent")
    ticket = agent.post_json("/v1/tickets", TICKET).json
    url = f"/v1/tickets/{ticket['id']}"
    res = agent.patch_json(url, {"assignee": "alice", "priority": "high"}, headers={"If-Match": '"1"'})
    assert res.json["assignee"] == "alice" and res.json["priority"] == "high"
    assert res.headers["ETag"] == '"2"'
    stale = agent.patch_json(url, {"priority": "low"}, headers={"If-Match": '"1"'}, status=412)
    assert stale.json["current_etag"] == '"2"'
    agent.patch_json(url, {"priority": "low"}, headers={"If-Match": "nonsense"}, status=412)
    assert agent.get(url).json["priority"] == "high"
    agent.patch_json(url, {"assignee": None})  # no If-Match: last writer wins
    assert agent.get(url).json["assignee"] is None
    agent.patch_json(url, {"assignee": None}, headers={"If-Match": '"3"'})  # nothing changes
    assert outbox(sup) == ["ticket.created", "ticket.assigned", "ticket.assigned"]


def test_lifecycle_and_409_naming_the_state(sup):
    agent = sup.as_("support_agent")
    ticket = agent.post_json("/v1/tickets", TICKET).json
    url = f"/v1/tickets/{ticket['id']}"
    res = agent.patch_json(url, {"status": "solved"}, status=409)
    assert res.json["current_status"] == "new" and "new" in res.json["detail"]
    for status in ("open", "pending", "open", "pending", "solved", "open", "solved", "closed"):
        assert agent.patch_json(url, {"status": status}).json["status"] == status
    res = agent.patch_json(url, {"status": "open"}, status=409)
    assert res.json["current_status"] == "closed"
    agent.post_json(f"{url}/comments", {"body": "late"}, status=409)
    assert outbox(sup).count("ticket.status_changed") == 8


def test_comments(sup):
    agent = sup.as_("support_agent", subject="bob")
    ticket = agent.post_json("/v1/tickets", TICKET).json
    url = f"/v1/tickets/{ticket['id']}/comments"
    first = agent.post_json(url, {"body": "We are looking into it."}, status=201).json
    assert first["visibility"] == "public" and first["author"] == "support_agent:bob"
    agent.post_json(url, {"body": "Carrier says lost.", "visibility": "internal"}, status=201)
    items = agent.get(url).json["items"]
    assert [c["visibility"] for c in items] == ["public", "internal"]
    assert [c["body"] for c in agent.get(url, {"visibility": "internal"}).json["items"]] == [
        "Carrier says lost."
    ]
    page = agent.get(url, {"limit": 1}).json
    rest = agent.get(url, {"limit": 1, "cursor": page["next_cursor"]}).json
    assert [c["id"] for c in rest["items"]] == [items[1]["id"]] and rest["next_cursor"] is None
    agent.post_json(url, {"body": "x", "visibility": "secret"}, status=422)
    agent.post_json(url, {"body": "x", "author": "me"}, status=422)
    agent.post_json(f"/v1/tickets/{uuid.uuid4()}/comments", {"body": "x"}, status=404)
    agent.get(f"/v1/tickets/{uuid.uuid4()}/comments", status=404)
    agent.get(url, {"cursor": "!!"}, status=422)


def test_roles(sup):
    ticket = sup.as_().post_json("/v1/tickets", TICKET, status=201).json
    staff = sup.as_("warehouse_staff", "AMS")
    # Staff read only tickets linked to their warehouses' shipments: this one is not.
    assert staff.get("/v1/tickets").json["items"] == []
    staff.post_json("/v1/tickets", TICKET, status=403)
    staff.get(f"/v1/tickets/{ticket['id']}", status=404)
    service = sup.as_("service")
    service.get(f"/v1/tickets/{ticket['id']}", status=200)
    service.patch_json(f"/v1/tickets/{ticket['id']}", {"status": "open"}, status=403)
    service.post_json(f"/v1/tickets/{ticket['id']}/comments", {"body": "x"}, status=403)
    sup.anonymous.get("/v1/tickets", status=401)


def test_bad_input_changes_nothing(sup):
    agent = sup.as_("support_agent")
    cases = [
        ({**TICKET, "bogus": 1}, "/bogus"),
        ({**TICKET, "type": "rant"}, "/type"),
        ({**TICKET, "priority": "asap"}, "/priority"),
        ({**TICKET, "subject": "x" * 201}, "/subject"),
        ({**TICKET, "subject": ""}, "/subject"),
        ({**TICKET, "subject": "a\x00b"}, "/subject"),
        ({k: v for k, v in TICKET.items() if k != "description"}, "/description"),
        ({**TICKET, "tags": ["ok", 3]}, "/tags/1"),
        ({**TICKET, "shipment_id": "not-a-uuid"}, "/shipment_id"),
        ({**TICKET, "queue": "has space"}, "/queue"),
    ]
    for body, pointer in cases:
        res = agent.post_json("/v1/tickets", body, status=422)
        assert pointer in [e["pointer"] for e in res.json["errors"]], (pointer, res.json)
    agent.post("/v1/tickets", "{", headers={"Content-Type": "application/json"}, status=400)
    agent.get("/v1/tickets", {"status": "lost"}, status=422)
    agent.get("/v1/tickets", {"limit": 201}, status=422)
    agent.get("/v1/tickets/not-a-uuid", status=404)
    agent.patch_json(f"/v1/tickets/{uuid.uuid4()}", {"status": "open"}, status=404)
    ticket = agent.post_json("/v1/tickets", TICKET).json
    url = f"/v1/tickets/{ticket['id']}"
    for body, pointer in [
        ({"status": "lost"}, "/status"),
        ({"number": 5}, "/number"),
        ({"shipment_id": str(uuid.uuid4())}, "/shipment_id"),
        ({"subject": "x" * 201}, "/subject"),
    ]:
        res = agent.patch_json(url, body, status=422)
        assert pointer in [e["pointer"] for e in res.json["errors"]], (pointer, res.json)
    assert agent.get(url).json["version"] == 1
    assert outbox(sup) == ["ticket.created"]


def test_search_pages_through_subject_and_comment_matches_once_each(sup):
    agent = sup.as_("support_agent")
    made = {}
    for name, subject, comments in [
        ("subject", "Customs hold in Rotterdam", []),
        ("comment", "Parcel late", ["Stuck at CUSTOMS", "still at customs"]),  # two matching comments
        ("both", "customs again", ["customs form missing"]),
        ("neither", "Wrong colour", ["customer wants blue"]),
        ("literal", "100% customs_fee", []),
        ("subject2", "Re: customs", ["internal: customs broker called"]),
    ]:
        ticket = agent.post_json("/v1/tickets", {**TICKET, "subject": subject}).json
        for body in comments:
            agent.post_json(f"/v1/tickets/{ticket['id']}/comments", {"body": body, "visibility": "internal"})
        made[name] = ticket
    seen, cursor = [], None
    while True:
        params = {"q": "customs", "limit": 2, "sort": "created_at", **({"cursor": cursor} if cursor else {})}
        page = agent.get("/v1/tickets", params).json
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [made[n]["id"] for n in ("subject", "comment", "both", "literal", "subject2")]
    assert seen == expected  # oldest first, each once
    assert [t["id"] for t in agent.get("/v1/tickets", {"q": "0% customs_"}).json["items"]] == [
        made["literal"]["id"]
    ]
    assert agent.get("/v1/tickets", {"q": "%_"}).json["items"] == []  # wildcards are literal
    assert [t["id"] for t in agent.get("/v1/tickets", {"q": "customs", "status": "open"}).json["items"]] == []

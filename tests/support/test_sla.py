"""SLA due times, the clock paused while pending, breach detection and the views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import text

from logistics_shared.outbox import Outbox
from support.domain import sla

TICKET = {
    "subject": "Where is my parcel?",
    "description": "Order 42",
    "type": "question",
    "priority": "urgent",
    "queue": "customers",
}


@pytest.fixture(params=["sqlite", "postgres"])
def sup(service_client, request):
    return service_client("support", request.param)


def sweep(client, now):
    factory = client.registry["dbsession_factory"]
    table = client.registry["logistics.platform_tables"].outbox
    with factory() as session, session.begin():
        return sla.sweep(session, Outbox(session, table, producer="support"), now)


def breaches(client):
    with client.engine.connect() as conn:
        rows = conn.execute(text("SELECT payload FROM outbox WHERE event_type = 'ticket.sla_breached'")).all()
    return sorted(orjson.loads(r[0])["data"]["kind"] for r in rows)


def test_due_times_follow_the_priority(sup):
    agent = sup.as_("support_agent")
    ticket = agent.post_json("/v1/tickets", TICKET).json
    created = datetime.fromisoformat(ticket["created_at"])
    assert datetime.fromisoformat(ticket["first_response_due"]) - created == timedelta(hours=1)
    assert datetime.fromisoformat(ticket["resolution_due"]) - created == timedelta(hours=4)
    # Urgent: the first answer is due within the hour, but "breaching soon" is the last
    # quarter of it (tests/support/test_sla_breaching_soon.py).
    assert ticket["sla_state"] == "ok"
    lowered = agent.patch_json(f"/v1/tickets/{ticket['id']}", {"priority": "low"}).json
    assert datetime.fromisoformat(lowered["resolution_due"]) - created == timedelta(days=7)
    assert lowered["sla_state"] == "ok"


def test_breaches_are_detected_once_and_a_public_answer_stops_the_first_response_clock(sup):
    agent = sup.as_("support_agent")
    answered = agent.post_json("/v1/tickets", TICKET).json
    silent = agent.post_json("/v1/tickets", {**TICKET, "subject": "Nobody answers"}).json
    agent.post_json(f"/v1/tickets/{answered['id']}/comments", {"body": "On its way!", "visibility": "public"})
    later = datetime.now(UTC) + timedelta(hours=2)
    assert sweep(sup, later) == 1  # only the unanswered one missed its first response
    assert sweep(sup, later) == 0  # and only once
    assert breaches(sup) == ["first_response"]
    assert agent.get(f"/v1/tickets/{silent['id']}").json["sla_state"] == "breached"
    assert [t["id"] for t in agent.get("/v1/tickets", {"sla": "breached"}).json["items"]] == [silent["id"]]
    much_later = datetime.now(UTC) + timedelta(hours=5)
    assert sweep(sup, much_later) == 2  # both miss resolution
    assert breaches(sup) == ["first_response", "resolution", "resolution"]


def test_pending_pauses_the_resolution_clock(sup):
    agent = sup.as_("support_agent")
    ticket = agent.post_json("/v1/tickets", TICKET).json
    url = f"/v1/tickets/{ticket['id']}"
    agent.patch_json(url, {"status": "open"})
    agent.post_json(f"{url}/comments", {"body": "Need your address", "visibility": "public"})
    pending = agent.patch_json(url, {"status": "pending"}).json
    assert pending["sla_state"] == "paused"
    assert [t["id"] for t in agent.get("/v1/tickets", {"sla": "paused"}).json["items"]] == [ticket["id"]]
    assert sweep(sup, datetime.now(UTC) + timedelta(hours=10)) == 0  # waiting on the customer
    # Pretend it sat in pending for 3 hours, then the customer answered.
    with sup.engine.begin() as conn:
        conn.execute(
            text("UPDATE tickets SET sla_paused_at = :t"), {"t": datetime.now(UTC) - timedelta(hours=3)}
        )
    resumed = agent.patch_json(url, {"status": "open"}).json
    moved = datetime.fromisoformat(resumed["resolution_due"]) - datetime.fromisoformat(
        ticket["resolution_due"]
    )
    assert timedelta(hours=2, minutes=59) < moved < timedelta(hours=3, minutes=1)
    # A new priority recomputes the due time from the policy, keeping the time spent paused.
    agent.patch_json(url, {"priority": "low"})
    back = agent.patch_json(url, {"priority": "urgent"}).json
    credited = datetime.fromisoformat(back["resolution_due"]) - datetime.fromisoformat(
        ticket["resolution_due"]
    )
    assert timedelta(hours=2, minutes=59) < credited < timedelta(hours=3, minutes=1)


def test_my_open_tickets(sup):
    ann = sup.as_("support_agent", subject="ann")
    mine = ann.post_json("/v1/tickets", TICKET).json
    ann.post_json("/v1/tickets", TICKET)
    ann.patch_json(f"/v1/tickets/{mine['id']}", {"assignee": "support_agent:ann", "status": "open"})
    found = ann.get("/v1/tickets", {"assignee": "me", "status": "open"}).json["items"]
    assert [t["id"] for t in found] == [mine["id"]]


def test_admins_edit_the_policies_and_new_tickets_follow_them(sup):
    admin, agent = sup.as_("admin"), sup.as_("support_agent")
    listed = agent.get("/v1/sla-policies").json
    assert [(p["priority"], p["first_response_minutes"], p["resolution_minutes"]) for p in listed] == [
        ("urgent", 60, 240),
        ("high", 240, 1440),
        ("normal", 480, 4320),
        ("low", 1440, 10080),
    ]
    before = agent.post_json("/v1/tickets", TICKET).json  # urgent, under the old policy
    url = "/v1/sla-policies/urgent"
    got = agent.get(url)
    assert got.headers["ETag"] == '"1"'
    body = {"first_response_minutes": 15, "resolution_minutes": 120}
    agent.put_json(url, body, status=403)  # agents read the policies; admins change them
    changed = admin.put_json(url, body, headers={"If-Match": '"1"'})
    assert changed.headers["ETag"] == '"2"'
    assert changed.json["updated_by"] == "admin:test-admin"
    assert changed.json["first_response_minutes"] == 15
    stale = admin.put_json(url, {**body, "resolution_minutes": 90}, headers={"If-Match": '"1"'}, status=412)
    assert stale.json["current_etag"] == '"2"'
    assert admin.put_json(url, body).headers["ETag"] == '"2"'  # the same targets again: no new version

    after = agent.post_json("/v1/tickets", TICKET).json
    created = datetime.fromisoformat(after["created_at"])
    assert datetime.fromisoformat(after["first_response_due"]) - created == timedelta(minutes=15)
    assert datetime.fromisoformat(after["resolution_due"]) - created == timedelta(hours=2)
    # The ticket opened before the change keeps the due times it was given.
    kept = agent.get(f"/v1/tickets/{before['id']}").json
    assert kept["resolution_due"] == before["resolution_due"]
    # Re-prioritising applies the current policy of the new priority.
    admin.put_json("/v1/sla-policies/low", {"first_response_minutes": 60, "resolution_minutes": 600})
    lowered = agent.patch_json(f"/v1/tickets/{before['id']}", {"priority": "low"}).json
    start = datetime.fromisoformat(before["created_at"])
    assert datetime.fromisoformat(lowered["resolution_due"]) - start == timedelta(hours=10)


def test_policy_input_is_checked(sup):
    admin = sup.as_("admin")
    url = "/v1/sla-policies/high"
    cases = [
        ({"first_response_minutes": 0, "resolution_minutes": 10}, "/first_response_minutes"),
        ({"first_response_minutes": 10, "resolution_minutes": 5}, "/resolution_minutes"),
        ({"first_response_minutes": 10, "resolution_minutes": 600_000}, "/resolution_minutes"),
        ({"first_response_minutes": "10", "resolution_minutes": 60}, "/first_response_minutes"),
        ({"first_response_minutes": True, "resolution_minutes": 60}, "/first_response_minutes"),
        ({"first_response_minutes": 1.5, "resolution_minutes": 60}, "/first_response_minutes"),
        ({"resolution_minutes": 60}, "/first_response_minutes"),
        ({"first_response_minutes": 10, "resolution_minutes": 60, "priority": "low"}, "/priority"),
    ]
    for body, pointer in cases:
        res = admin.put_json(url, body, status=422)
        assert [e["pointer"] for e in res.json["errors"]] == [pointer], body
    admin.put_json(
        "/v1/sla-policies/critical", {"first_response_minutes": 1, "resolution_minutes": 2}, status=404
    )
    admin.get("/v1/sla-policies/critical", status=404)
    assert admin.get(url).json["version"] == 1

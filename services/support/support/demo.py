"""Support's demo data, created through its own HTTP API (``logistics demo``).

It waits until its read model has followed shipping's demo shipments (and opened the
automatic tickets of the shortage and the exception), then opens four tickets by hand,
linked to those shipments, and works them to new, open (with a comment), pending and
solved. The references are the ones shipping's demo uses (named, not imported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logistics_shared.demo import DemoContext, DemoError

SERVICE = "support"
AGENT = "support_agent:ann"

#: Shipping's demo shipments and the statuses they end in. DEMO-1001 may also be on hold:
#: its stock is held for LOGISTICS_SHIPMENT_HOLD_HOURS, and a rerun days later finds it so.
SHIPMENTS = {
    "DEMO-1001": ("ready", "on_hold"),
    "DEMO-1002": ("on_hold",),
    "DEMO-1003": ("delivered",),
    "DEMO-1004": ("exception",),
    "DEMO-1005": ("cancelled",),
}
#: Statuses for which support opens a ticket by itself.
AUTOMATIC = ("on_hold", "exception")


@dataclass(frozen=True)
class DemoTicket:
    key: str
    shipment: str
    ticket: dict[str, Any]
    #: Statuses it is taken through after ``new``.
    path: tuple[str, ...]
    comment: dict[str, str] | None = None


TICKETS = (
    DemoTicket(
        "where-is-my-order",
        "DEMO-1001",
        {
            "subject": "Where is my order?",
            "description": "I ordered two mugs and a T-shirt yesterday; when will they ship?",
            "type": "question",
            "priority": "normal",
            "tags": ["wismo"],
        },
        path=(),
    ),
    DemoTicket(
        "chipped-mug",
        "DEMO-1003",
        {
            "subject": "The mug arrived chipped",
            "description": "The parcel came today; the mug has a chip on its rim.",
            "type": "incident",
            "priority": "normal",
            "tags": ["damaged"],
        },
        path=("open",),
        comment={"body": "Sorry about that! A replacement mug is on its way.", "visibility": "public"},
    ),
    DemoTicket(
        "full-address",
        "DEMO-1004",
        {
            "subject": "Carrier cannot find my address",
            "description": "The tracking page says the address was not found. It is Meir 221B.",
            "type": "problem",
            "priority": "high",
            "tags": ["address"],
        },
        path=("open", "pending"),
        comment={"body": "Could you send us a photo of the door sign, please?", "visibility": "public"},
    ),
    DemoTicket(
        "cancel-order",
        "DEMO-1005",
        {
            "subject": "Please cancel my order",
            "description": "I found a bottle at home after all.",
            "type": "task",
            "priority": "low",
            "tags": ["cancellation"],
        },
        path=("open", "solved"),
        comment={"body": "Cancelled in shipping; the stock is back in Rotterdam.", "visibility": "internal"},
    ),
)


def _find(ctx: DemoContext, reference: str) -> dict[str, Any] | None:
    items = ctx.get(SERVICE, f"/v1/shipments?reference={reference}").body["items"]
    return items[0] if items else None


def _followed(ctx: DemoContext, reference: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    def seen() -> dict[str, Any] | None:
        view = _find(ctx, reference)
        if view is None or view["status"] not in statuses:
            return None
        # The shortage and the exception each open a ticket by themselves (from the same events).
        if view["status"] in AUTOMATIC and not view["tickets"]:
            return None
        return view

    what = f"{reference} in support's read model as {' or '.join(statuses)}"
    return ctx.wait_for(what + (" with its automatic ticket" if set(statuses) & set(AUTOMATIC) else ""), seen)


def _comment(ctx: DemoContext, demo: DemoTicket, path: str) -> None:
    if demo.comment:
        ctx.post(SERVICE, f"{path}/comments", demo.comment, key=f"demo-comment-{demo.key}", expect=(201,))


def _work(ctx: DemoContext, demo: DemoTicket, shipment_id: str) -> dict[str, Any]:
    body = {**demo.ticket, "shipment_id": shipment_id, "order_reference": demo.shipment}
    created = ctx.post(SERVICE, "/v1/tickets", body, key=f"demo-ticket-{demo.key}", expect=(201,)).body
    path = f"/v1/tickets/{created['id']}"
    reply = ctx.get(SERVICE, path)
    ticket, etag = reply.body, reply.etag
    route = ("new", *demo.path)
    if ticket["status"] not in route:
        ctx.echo(f"  note: ticket #{ticket['number']} is {ticket['status']}, off its demo path; left as is")
        return ticket
    if ticket["status"] != "new":
        # A rerun: the key replays the comment, or adds the one an interrupted run did not get to.
        _comment(ctx, demo, path)
    for target in route[route.index(ticket["status"]) + 1 :]:
        change: dict[str, Any] = {"status": target}
        if target == "open":
            change["assignee"] = AGENT
        reply = ctx.call("PATCH", SERVICE, path, change, headers={"If-Match": etag}, expect=(200,))
        ticket, etag = reply.body, reply.etag
        if target == "open":
            # Answered while open: pending then means waiting for the customer's reply.
            _comment(ctx, demo, path)
    if ticket["status"] != route[-1]:
        raise DemoError(f"ticket #{ticket['number']} should be {route[-1]} but is {ticket['status']}")
    return ticket


def load(ctx: DemoContext) -> None:
    """Wait for the read model, then open and work the manual tickets (safe to run again)."""
    views = {ref: _followed(ctx, ref, statuses) for ref, statuses in SHIPMENTS.items()}
    for reference, view in views.items():
        if view["status"] in AUTOMATIC:
            ctx.echo(f"  automatic ticket #{view['tickets'][0]['number']} for {reference} ({view['status']})")
    for demo in TICKETS:
        ticket = _work(ctx, demo, views[demo.shipment]["shipment_id"])
        ctx.echo(f"  ticket #{ticket['number']} {ticket['status']}: {ticket['subject']}")

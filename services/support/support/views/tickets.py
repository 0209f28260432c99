from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import Reply, endpoint
from logistics_shared.web.etag import etag, expected_version

from ..domain import tickets
from ..permissions import Permission
from ..schemas.tickets import (
    CommentCreateSchema,
    CommentPageSchema,
    CommentQuerySchema,
    CommentSchema,
    TicketCreateSchema,
    TicketPageSchema,
    TicketQuerySchema,
    TicketSchema,
    TicketUpdateSchema,
)

TAGS = ("tickets",)


def _soon(request: Request) -> float:
    """The share of a target that is "breaching soon" (``sla_state``, ``?sla=``)."""
    fraction: float = request.registry["logistics.settings"].own.sla_breaching_soon_fraction
    return fraction


@endpoint(
    "tickets",
    "POST",
    permission=Permission.SUPPORT_WRITE,
    summary="Open a ticket",
    tags=TAGS,
    body=TicketCreateSchema,
    response=TicketSchema,
    status=201,
    idempotent=True,
    creates="ticket",
    example={
        "subject": "Where is my parcel?",
        "description": "The customer ordered on Monday and has no tracking update yet.",
        "type": "question",
        "priority": "normal",
        "tags": ["tracking"],
        "order_reference": "ORDER-1001",
    },
)
def create(request: Request, body: dict[str, Any]) -> Reply:
    ticket = tickets.create(
        request.dbsession, request.outbox, request.identity.actor, body, soon_fraction=_soon(request)
    )
    return Reply(
        ticket,
        headers={"Location": request.route_path("ticket", id=ticket["id"]), "ETag": etag(ticket["version"])},
    )


@endpoint(
    "tickets",
    "GET",
    permission=Permission.SUPPORT_READ,
    summary="List tickets",
    tags=TAGS,
    query=TicketQuerySchema,
    response=TicketPageSchema,
)
def list_(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    if query.get("assignee") == "me":  # "my open tickets": ?assignee=me&status=open
        query = {**query, "assignee": request.identity.actor}
    rows, cursor = tickets.list_(
        request.dbsession,
        request.identity,
        filters=query,
        cursor=query["cursor"],
        limit=query["limit"],
        soon_fraction=_soon(request),
        sort=query["sort"],
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "ticket",
    "GET",
    permission=Permission.SUPPORT_READ,
    summary="A ticket",
    tags=TAGS,
    response=TicketSchema,
    problems=(404,),
)
def get(request: Request) -> Reply:
    ticket = tickets.load(request.dbsession, request.matchdict["id"], request.identity, _soon(request))
    return Reply(ticket, headers={"ETag": etag(ticket["version"])})


@endpoint(
    "ticket",
    "PATCH",
    permission=Permission.SUPPORT_WRITE,
    summary="Change a ticket: fields, status (lifecycle), assignee (If-Match guards it)",
    tags=TAGS,
    body=TicketUpdateSchema,
    response=TicketSchema,
    problems=(404, 409),
    etag=True,
    example={"status": "open", "assignee": "agent-7"},
)
def update(request: Request, body: dict[str, Any]) -> Reply:
    ticket = tickets.change(
        request.dbsession,
        request.outbox,
        request.matchdict["id"],
        body,
        expected_version(request),
        soon_fraction=_soon(request),
    )
    return Reply(ticket, headers={"ETag": etag(ticket["version"])})


@endpoint(
    "ticket_comments",
    "POST",
    permission=Permission.SUPPORT_WRITE,
    summary="Comment on a ticket (public or internal)",
    tags=TAGS,
    body=CommentCreateSchema,
    response=CommentSchema,
    status=201,
    problems=(404, 409),
    idempotent=True,
    example={"body": "We have asked the carrier and will update you today.", "visibility": "public"},
)
def comment(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return tickets.add_comment(
        request.dbsession,
        request.matchdict["id"],
        request.identity.actor,
        body["body"],
        body["visibility"],
    )


@endpoint(
    "ticket_comments",
    "GET",
    permission=Permission.SUPPORT_READ,
    summary="A ticket's comments, oldest first unless sorted otherwise",
    tags=TAGS,
    query=CommentQuerySchema,
    response=CommentPageSchema,
    problems=(404,),
)
def comments(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = tickets.comments(
        request.dbsession,
        request.matchdict["id"],
        request.identity,
        visibility=query.get("visibility"),
        cursor=query["cursor"],
        limit=query["limit"],
        sort=query["sort"],
    )
    return {"items": rows, "next_cursor": cursor}

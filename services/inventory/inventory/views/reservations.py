from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.schemas import ONE_LINE_PER_SKU
from logistics_shared.web.endpoint import Reply, endpoint

from ..domain import reservations
from ..permissions import Permission
from ..schemas.reservations import (
    ReservationConflictProblemSchema,
    ReservationCreateSchema,
    ReservationPageSchema,
    ReservationQuerySchema,
    ReservationSchema,
)

TAGS = ("reservations",)


@endpoint(
    "reservations",
    "POST",
    permission=Permission.RESERVATIONS_WRITE,
    summary="Reserve stock for a reference: every line or none",
    tags=TAGS,
    body=ReservationCreateSchema,
    response=ReservationSchema,
    status=201,
    idempotent=True,
    problems=((409, ReservationConflictProblemSchema),),
    references=("/warehouse", "/lines/*/sku", "/expires_at"),
    creates="reservation",
    cross_field=ONE_LINE_PER_SKU,
    example={"warehouse": "AMS", "reference": "SO-1001", "lines": [{"sku": "TEE-M", "quantity": 2}]},
)
def reserve(request: Request, body: dict[str, Any]) -> Reply:
    """A shortage on any line is a 409 listing, per short line, requested and available."""
    reservation = reservations.reserve(request.dbsession, request.outbox, request.identity, body)
    return Reply(reservation, headers={"Location": request.route_path("reservation", id=reservation["id"])})


@endpoint(
    "reservations",
    "GET",
    permission=Permission.RESERVATIONS_READ,
    summary="List reservations",
    tags=TAGS,
    query=ReservationQuerySchema,
    response=ReservationPageSchema,
)
def list_reservations(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    rows, cursor = reservations.list_reservations(
        request.dbsession,
        request.identity,
        warehouse=query.get("warehouse"),
        reference=query.get("reference"),
        status=query.get("status"),
        cursor=query["cursor"],
        limit=query["limit"],
        sort=query["sort"],
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "reservation",
    "GET",
    permission=Permission.RESERVATIONS_READ,
    summary="Get a reservation",
    tags=TAGS,
    response=ReservationSchema,
    problems=(404,),
)
def get_reservation(request: Request) -> dict[str, Any]:
    return reservations.get_reservation(request.dbsession, request.identity, request.matchdict["id"])


@endpoint(
    "reservation_release",
    "POST",
    permission=Permission.RESERVATIONS_WRITE,
    summary="Release a reservation",
    tags=TAGS,
    response=ReservationSchema,
    action=True,
    problems=(404, (409, ReservationConflictProblemSchema)),
    example={},
)
def release(request: Request) -> dict[str, Any]:
    return reservations.release(request.dbsession, request.outbox, request.identity, request.matchdict["id"])


@endpoint(
    "reservation_consume",
    "POST",
    permission=Permission.RESERVATIONS_WRITE,
    summary="Consume a reservation: issue its stock (ledger rows of kind issue)",
    tags=TAGS,
    response=ReservationSchema,
    action=True,
    problems=(404, (409, ReservationConflictProblemSchema)),
    example={},
)
def consume(request: Request) -> dict[str, Any]:
    return reservations.consume(request.dbsession, request.outbox, request.identity, request.matchdict["id"])

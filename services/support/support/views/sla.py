"""SLA policies: read by everyone who reads tickets, replaced by admins."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from logistics_shared.web.endpoint import Reply, endpoint
from logistics_shared.web.etag import etag, expected_version

from ..domain import sla
from ..models import PRIORITIES
from ..permissions import Permission
from ..schemas.sla import SlaPolicySchema, SlaPolicyUpdateSchema

TAGS = ("sla",)
PRIORITY_PATH = {"priority": {"type": "string", "enum": list(PRIORITIES)}}


@endpoint(
    "sla_policies",
    "GET",
    permission=Permission.DESK_READ,
    summary="SLA policies: first-response and resolution targets per priority",
    tags=TAGS,
    response=SlaPolicySchema,
    many=True,
)
def list_(request: Request) -> list[dict[str, Any]]:
    return sla.policies(request.dbsession)


@endpoint(
    "sla_policy",
    "GET",
    permission=Permission.DESK_READ,
    summary="One priority's SLA policy",
    tags=TAGS,
    response=SlaPolicySchema,
    problems=(404,),
    path_parameters=PRIORITY_PATH,
)
def get(request: Request) -> Reply:
    policy = sla.policy(request.dbsession, request.matchdict["priority"])
    return Reply(policy, headers={"ETag": etag(policy["version"])})


@endpoint(
    "sla_policy",
    "PUT",
    permission=Permission.SLA_WRITE,
    summary=(
        "Replace one priority's targets (admins; If-Match guards it). Applies to tickets opened "
        "or re-prioritised afterwards; open tickets keep their due times"
    ),
    tags=TAGS,
    body=SlaPolicyUpdateSchema,
    response=SlaPolicySchema,
    problems=(404, 409),
    etag=True,
    cross_field={"/resolution_minutes": "Must not be shorter than first_response_minutes."},
    path_parameters=PRIORITY_PATH,
    example={"first_response_minutes": 240, "resolution_minutes": 1440},
)
def replace(request: Request, body: dict[str, Any]) -> Reply:
    policy = sla.set_policy(
        request.dbsession,
        request.matchdict["priority"],
        body["first_response_minutes"],
        body["resolution_minutes"],
        request.identity.actor,
        expected_version(request),
    )
    return Reply(policy, headers={"ETag": etag(policy["version"])})

"""The webhook subscriptions API: thin ``@endpoint`` views over :mod:`.domain`.

The views are built per service (:func:`build_views`): the permission names the
service (``shipping:webhooks:manage``) and the input schemas its catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from ..web.endpoint import Reply, endpoint
from ..web.etag import etag, expected_version
from .catalogue import Catalogue
from .delivery_log import DeliveryLog
from .domain import Subscriptions
from .schemas import (
    RANGE_RULE,
    DeliveryDetailSchema,
    DeliveryPageSchema,
    DeliverySchema,
    EndpointPageSchema,
    EndpointQuerySchema,
    EndpointSchema,
    EndpointWithSecretSchema,
    EventTypeSchema,
    RedeliveredSchema,
    RedeliverFailedSchema,
    webhook_schemas,
)

TAGS = ("webhooks",)
#: The registry keys: the secret box (set by the app) and the subscriptions built from it.
SECRETBOX_KEY = "logistics.secretbox"
_SUBSCRIPTIONS_KEY = "logistics.webhook_subscriptions"
_DELIVERY = {"delivery_id": {"type": "string", "format": "uuid"}}


def subscriptions(request: Request) -> Subscriptions:
    registry = request.registry
    found: Subscriptions | None = registry.get(_SUBSCRIPTIONS_KEY)
    if found is None:  # built on first use: the secret box may be set after the routes
        found = registry[_SUBSCRIPTIONS_KEY] = Subscriptions(
            registry["logistics.service"].name,
            registry["logistics.platform_tables"].webhooks,
            registry[SECRETBOX_KEY],
            registry["logistics.settings"],
        )
    return found


def _now() -> datetime:
    return datetime.now(UTC)


def _with_etag(data: dict[str, Any], status: int | None = None) -> Reply:
    return Reply(data, status=status, headers={"ETag": etag(data["version"])})


def _examples(service: str) -> dict[str, Any]:
    catalogue = Catalogue(service)
    own = next((e for e in catalogue.events if e.source is not None), catalogue.events[0])
    prefix = own.type.split(".")[0]
    create: dict[str, Any] = {
        "url": f"https://hooks.example.com/logistics/{service}",
        "description": "Our ERP",
        "event_types": [f"{prefix}.*"],
    }
    if webhook_schemas(service).warehouses:
        create["warehouses"] = ["AMS"]
    change = {"description": "Our ERP (production)", "event_types": [own.type, "webhook_endpoint.disabled"]}
    return {"create": create, "change": change}


def build_views(service: str, permission: str) -> list[Callable[..., Any]]:
    """The views of one service's webhook API (see ``routes.add_webhook_routes``)."""
    schemas = webhook_schemas(service)
    examples = _examples(service)
    scoped = ("/warehouses",) if schemas.warehouses else ()

    @endpoint(
        "webhook_endpoints",
        "POST",
        permission=permission,
        summary="Subscribe an endpoint to events (its signing secret is shown once, here)",
        tags=TAGS,
        body=schemas.create,
        response=EndpointWithSecretSchema,
        status=201,
        idempotent=True,
        sealed=True,
        references=("/url", *scoped),
        creates="webhook_endpoint",
        example=examples["create"],
    )
    def create(request: Request, body: dict[str, Any]) -> Reply:
        """The URL must be https (http only where the service allows it) and must not be a
        loopback, private, link-local or metadata address, unless allow-listed: a 422 at
        /url. Warehouse staff must limit the endpoint to some of their warehouses."""
        created = subscriptions(request).create(request.dbsession, request.identity, body, _now())
        reply = _with_etag(created)
        reply.headers["Location"] = request.route_path("webhook_endpoint", id=created["id"])
        return reply

    @endpoint(
        "webhook_endpoints",
        "GET",
        permission=permission,
        summary="List webhook endpoints, oldest first",
        tags=TAGS,
        query=EndpointQuerySchema,
        response=EndpointPageSchema,
    )
    def list_(request: Request, query: dict[str, Any]) -> dict[str, Any]:
        rows, cursor = subscriptions(request).list_(
            request.dbsession,
            request.identity,
            cursor=query["cursor"],
            limit=query["limit"],
            sort=query["sort"],
        )
        return {"items": rows, "next_cursor": cursor}

    @endpoint(
        "webhook_endpoint",
        "GET",
        permission=permission,
        summary="A webhook endpoint (never its secret)",
        tags=TAGS,
        response=EndpointSchema,
    )
    def get(request: Request) -> Reply:
        return _with_etag(
            subscriptions(request).load(request.dbsession, request.matchdict["id"], request.identity)
        )

    @endpoint(
        "webhook_endpoint",
        "PATCH",
        permission=permission,
        summary="Change a webhook endpoint; enabled=false disables it, true re-enables it",
        tags=TAGS,
        body=schemas.update,
        response=EndpointSchema,
        problems=(409,),
        etag=True,
        references=("/url", *scoped),
        example=examples["change"],
    )
    def update(request: Request, body: dict[str, Any]) -> Reply:
        """Disabling sets disabled_reason "manual"; enabling clears the reason, disabled_at
        and failing_since (the dispatcher's failing clock starts again)."""
        changed = subscriptions(request).change(
            request.dbsession,
            request.identity,
            request.matchdict["id"],
            body,
            expected_version(request),
            _now(),
        )
        return _with_etag(changed)

    @endpoint(
        "webhook_endpoint",
        "DELETE",
        permission=permission,
        summary="Delete a webhook endpoint with its delivery log",
        tags=TAGS,
        status=204,
        etag=True,
    )
    def delete(request: Request) -> Response:
        subscriptions(request).delete(
            request.dbsession, request.identity, request.matchdict["id"], expected_version(request)
        )
        return Response(status=204)

    @endpoint(
        "webhook_endpoint_rotate_secret",
        "POST",
        permission=permission,
        summary="Rotate the signing secret (the new one shown once; the old one signs for a grace period)",
        tags=TAGS,
        response=EndpointWithSecretSchema,
        action=True,
        example={},
    )
    def rotate_secret(request: Request) -> Reply:
        """While the old secret is in its grace period (LOGISTICS_WEBHOOK_SECRET_GRACE_HOURS,
        until previous_secret_until), every message carries both signatures."""
        rotated = subscriptions(request).rotate_secret(
            request.dbsession, request.identity, request.matchdict["id"], _now()
        )
        return _with_etag(rotated)

    @endpoint(
        "webhook_endpoint_ping",
        "POST",
        permission=permission,
        summary="Send a test message (webhook_endpoint.ping) to this endpoint",
        tags=TAGS,
        response=DeliverySchema,
        status=202,
        problems=(409,),
        action=True,
        example={},
    )
    def ping(request: Request) -> dict[str, Any]:
        """The answer is the pending delivery; follow it in the delivery log. A disabled
        endpoint is a 409."""
        return subscriptions(request).ping(
            request.dbsession, request.identity, request.matchdict["id"], _now()
        )

    @endpoint(
        "webhook_deliveries",
        "GET",
        permission=permission,
        summary="An endpoint's delivery log, newest first",
        tags=TAGS,
        query=schemas.deliveries_query,
        response=DeliveryPageSchema,
    )
    def deliveries(request: Request, query: dict[str, Any]) -> dict[str, Any]:
        rows, cursor = DeliveryLog(subscriptions(request)).list_(
            request.dbsession,
            request.identity,
            request.matchdict["id"],
            filters=query,
            cursor=query["cursor"],
            limit=query["limit"],
            sort=query["sort"],
        )
        return {"items": rows, "next_cursor": cursor}

    @endpoint(
        "webhook_delivery",
        "GET",
        permission=permission,
        summary="A delivery with its payload and every attempt",
        tags=TAGS,
        response=DeliveryDetailSchema,
        path_parameters=_DELIVERY,
    )
    def delivery(request: Request) -> dict[str, Any]:
        return DeliveryLog(subscriptions(request)).load(
            request.dbsession, request.identity, request.matchdict["id"], request.matchdict["delivery_id"]
        )

    @endpoint(
        "webhook_delivery_redeliver",
        "POST",
        permission=permission,
        summary="Send a delivery again (delivered or failed; a pending one is a 409)",
        tags=TAGS,
        response=DeliverySchema,
        status=202,
        problems=(409,),
        action=True,
        example={},
        path_parameters=_DELIVERY,
    )
    def redeliver(request: Request) -> dict[str, Any]:
        """Same webhook-id as before: receivers that de-duplicate by it see a duplicate.
        A disabled endpoint is a 409."""
        return DeliveryLog(subscriptions(request)).redeliver(
            request.dbsession,
            request.identity,
            request.matchdict["id"],
            request.matchdict["delivery_id"],
            _now(),
        )

    @endpoint(
        "webhook_redeliver_failed",
        "POST",
        permission=permission,
        summary="Send again every failed delivery of this endpoint created since a time",
        tags=TAGS,
        body=RedeliverFailedSchema,
        response=RedeliveredSchema,
        status=202,
        problems=(409,),
        cross_field=RANGE_RULE,
        example={"since": "2026-12-01T00:00:00Z"},
    )
    def redeliver_failed(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        """Deliveries created from since (included) to until (excluded, default: now) whose
        retries were exhausted go back to pending. A disabled endpoint is a 409."""
        count = DeliveryLog(subscriptions(request)).redeliver_failed(
            request.dbsession, request.identity, request.matchdict["id"], body["since"], body["until"], _now()
        )
        return {"redelivered": count}

    @endpoint(
        "webhook_event_types",
        "GET",
        permission=permission,
        summary="The events an endpoint can subscribe to (and the ping), with their payload versions",
        tags=TAGS,
        response=EventTypeSchema,
        many=True,
    )
    def event_types(request: Request) -> list[dict[str, Any]]:
        return subscriptions(request).event_types()

    return [
        create,
        list_,
        get,
        update,
        delete,
        rotate_secret,
        ping,
        deliveries,
        delivery,
        redeliver,
        redeliver_failed,
        event_types,
    ]

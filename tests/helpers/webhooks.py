"""Webhook subscriptions in tests: the API's paths, an endpoint body, and delivery-log rows
written as the fan-out and the dispatcher would write them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

#: The services that offer webhook subscriptions.
WEBHOOK_SERVICES = ("shipping", "support")


def collection(service: str) -> str:
    return f"/v1/{service}/webhook-endpoints"


def endpoint_body(service: str, **changes: Any) -> dict[str, Any]:
    prefix = "shipment" if service == "shipping" else "ticket"
    return {"url": "https://hooks.example.com/logistics", "event_types": [f"{prefix}.*"], **changes}


def tables(client: Any) -> Any:
    return client.registry["logistics.platform_tables"].webhooks


def add_delivery(
    client: Any,
    endpoint_id: str,
    *,
    status: str = "failed",
    event_type: str | None = None,
    created_at: datetime | None = None,
    attempts: list[dict[str, Any]] | None = None,
    message_id: str | None = None,
) -> str:
    """A delivery (and its message, unless ``message_id`` names one) with its attempts."""
    t = tables(client)
    created_at = created_at or datetime.now(UTC)
    shipping = client.registry["logistics.service"].name == "shipping"
    event_type = event_type or ("shipment.ready" if shipping else "ticket.created")
    if attempts is None:
        failure = {"outcome": "http_error", "status_code": 500, "latency_ms": 12}
        attempts = [{**failure, "response_body": "oops", "error": None}]
    delivery_id = str(uuid.uuid4())
    finished = None if status == "pending" else created_at
    with client.engine.begin() as conn:
        if message_id is None:
            message_id = str(uuid.uuid4())
            body = {"type": event_type, "timestamp": created_at.isoformat(), "data": {"number": 1}}
            conn.execute(
                t.messages.insert().values(
                    id=message_id,
                    event_type=event_type,
                    warehouse=None,
                    payload=orjson.dumps(body).decode(),
                    created_at=created_at,
                )
            )
        conn.execute(
            t.deliveries.insert().values(
                id=delivery_id,
                endpoint_id=endpoint_id,
                message_id=message_id,
                event_type=event_type,
                status=status,
                attempts=len(attempts),
                next_attempt_at=created_at if status == "pending" else None,
                claim=str(uuid.uuid4()) if status == "pending" else None,
                claimed_until=None,
                last_status_code=attempts[-1]["status_code"] if attempts else None,
                last_error=attempts[-1]["error"] if attempts else None,
                created_at=created_at,
                finished_at=finished,
            )
        )
        for attempt in attempts:
            conn.execute(
                t.attempts.insert().values(delivery_id=delivery_id, attempted_at=created_at, **attempt)
            )
    return delivery_id


def count_rows(client: Any, table: str, **where: Any) -> int:
    t = getattr(tables(client), table)
    with client.engine.connect() as conn:
        stmt = t.select().where(*(t.c[k] == v for k, v in where.items()))
        return len(conn.execute(stmt).all())

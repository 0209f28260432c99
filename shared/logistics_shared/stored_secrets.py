"""Re-encrypting a service's stored secrets with the first key of ``LOGISTICS_SECRETS_KEY``
(``logistics reencrypt-secrets <svc>``), the step that lets an old key be dropped.

The stored secrets are the webhook endpoints' (where the service has webhooks) and the
columns its ``ServiceSpec.stored_secrets`` names (shipping: the carriers' secrets).
Rows are rewritten in batches, each in its own short transaction, and only where the
token is still the one read, so a secret rotated meanwhile is not overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, select, update
from sqlalchemy.engine import Engine

from .service import ServiceSpec


def encrypted_columns(spec: ServiceSpec, platform: Any) -> list[Column[Any]]:
    columns: list[Column[Any]] = []
    if platform.webhooks is not None:
        endpoints = platform.webhooks.endpoints
        columns += [endpoints.c.secret, endpoints.c.previous_secret]
    if spec.stored_secrets is not None:
        columns += list(spec.stored_secrets())
    return columns


def reencrypt(engine: Engine, box: Any, columns: Sequence[Column[Any]], batch: int = 500) -> dict[str, int]:
    """Rotate every token in ``columns`` to the box's first key; returns counts per column."""
    done: dict[str, int] = {}
    for column in columns:
        table = column.table
        (key,) = table.primary_key.columns  # the tables holding secrets have one-column keys
        count, after = 0, None
        while True:
            stmt = select(key, column).where(column.is_not(None)).order_by(key).limit(batch)
            if after is not None:
                stmt = stmt.where(key > after)
            with engine.begin() as conn:
                rows = conn.execute(stmt).all()
                for row_key, token in rows:
                    result = conn.execute(
                        update(table)
                        .where(key == row_key, column == token)
                        .values({column.name: box.rotate(token)})
                    )
                    count += result.rowcount
            if len(rows) < batch:
                break
            after = rows[-1][0]
        done[f"{table.name}.{column.name}"] = count
    return done

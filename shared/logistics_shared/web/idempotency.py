"""``Idempotency-Key`` on creating POSTs, stored in the service's database.

The key is claimed in a short transaction of its own (so a concurrent retry
sees it and gets a 409), and the response is stored by the request's own
transaction, so it commits if and only if the effects commit.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .. import errors
from ..db import aware, execute_at_commit
from ..identity import Identity, recording_scope
from ..logs import describe_error
from .responses import ApiResponse

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
#: How long a claim protects a request that is still running; a crashed
#: process's claim can be taken over after it.
LEASE = timedelta(seconds=60)
REPLAYED_HEADERS = ("Content-Type", "ETag", "Location")
#: 1-255 visible ASCII characters, spaces allowed inside: what every HTTP stack
#: carries unchanged (servers strip spaces at the ends, and non-ASCII header bytes
#: are read differently by different proxies).
_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
KEY_PATTERN_ECMA = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0" + request.path_qs.encode() + b"\0")
    digest.update(request.environ.get("logistics.raw_body", b""))
    return digest.hexdigest()


#: Marks a stored answer encrypted with the registry's secret box (see ``sealed``).
SEALED = b"sealed:"


def run_idempotent(request: Request, produce: Callable[[], Response], *, sealed: bool = False) -> Response:
    """``sealed``: the answer carries a secret shown once (a webhook endpoint's signing
    secret), so it is stored encrypted with the secret box and decrypted to replay it."""
    key = request.headers.get(HEADER)
    if key is None:
        return produce()
    if not _KEY.fullmatch(key):
        raise errors.ValidationFailed(
            [
                {
                    "pointer": f"/{HEADER}",
                    "in": "header",
                    "detail": "Must be 1-255 visible ASCII characters (spaces only inside).",
                }
            ]
        )
    table = request.registry["logistics.platform_tables"].idempotency_keys
    engine = request.registry["dbengine"]
    caller = request.identity.actor
    route = f"{request.method} {request.matched_route.name}"
    fingerprint = _fingerprint(request)
    where = and_(table.c.caller == caller, table.c.route == route, table.c.key == key)

    now = datetime.now(UTC)
    row_id = _claim(
        request.registry,
        table,
        {
            "caller": caller,
            "route": route,
            "key": key,
            "fingerprint": fingerprint,
            "state": "running",
            "locked_until": now + LEASE,
            "created_at": now,
        },
    )
    if row_id is None:
        row_id = _existing(engine, table, where, fingerprint, now, request.identity, request.registry)
        if row_id is None:
            # The stored response was made for warehouses this token no longer covers:
            # do not replay it; the request runs as a new one, and the service layer
            # refuses the foreign warehouse exactly as it would without a key.
            return produce()
        if isinstance(row_id, Response):
            return row_id

    committed: list[bool] = []
    request.tm.get().addAfterCommitHook(committed.append)
    stored = False

    def release(_request: Request) -> None:
        # Runs after the request's transaction ended: if the response was not
        # stored (an error, or the commit failed) free the key for a retry. A
        # committed transaction stored it (a 2xx) or wrote nothing, since an error
        # response aborts: then there is nothing to free, and no round trip to pay.
        if committed == [True] and stored:
            return
        try:
            with engine.begin() as conn:
                conn.execute(delete(table).where(table.c.id == row_id, table.c.state == "running"))
        except (DBAPIError, PoolTimeout) as exc:
            # A finished callback runs after the response was made, outside the exception
            # views: raising here turned the request's 503 problem (the database refusing
            # connections: "too many clients already") into the WSGI server's HTML 500
            # (tests/ops/test_connection_budget.py). The key stays claimed until its LEASE
            # ends; a retry with it meanwhile gets the 409 with Retry-After, then takes it over.
            log.warning("idempotency key claim %s not released: %s", row_id, describe_error(exc))

    request.add_finished_callback(release)
    with recording_scope() as scope:
        response = produce()
    stored = response.status_code < 400
    if stored:
        headers = {h: response.headers[h] for h in REPLAYED_HEADERS if h in response.headers}
        # Nobody reads this UPDATE's result: it goes with the COMMIT (one round trip).
        execute_at_commit(
            request.dbsession,
            update(table)
            .where(table.c.id == row_id)
            .values(
                state="done",
                response_status=response.status_code,
                response_headers=orjson.dumps(headers).decode(),
                response_body=_seal(request.registry, response.body) if sealed else response.body,
                scope=orjson.dumps(sorted(scope)).decode(),
            ),
        )
    return response


def _seal(registry: Any, body: bytes) -> bytes:
    return SEALED + str(registry["logistics.secretbox"].encrypt(body.decode())).encode()


def _unseal(registry: Any, stored: bytes) -> bytes:
    if not stored.startswith(SEALED):
        return stored
    return str(registry["logistics.secretbox"].decrypt(stored[len(SEALED) :].decode())).encode()


def _claim(registry: Any, table: Any, values: dict[str, Any]) -> int | None:
    """Claim the key: the new row's id, or ``None`` when (caller, route, key) exists.

    On PostgreSQL in autocommit on the read engine, one round trip: the claim is
    visible to a concurrent retry at once. ``ON CONFLICT DO NOTHING``, not an error
    caught, so it can run without a transaction of its own."""
    engine, read_engine = registry["dbengine"], registry["dbengine_read"]
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["caller", "route", "key"])
        .returning(table.c.id)
    )
    row_id: int | None
    if read_engine is not engine:  # autocommit
        with read_engine.connect() as conn:
            row_id = conn.execute(stmt).scalar_one_or_none()
    else:
        with engine.begin() as conn:
            row_id = conn.execute(stmt).scalar_one_or_none()
    return row_id


def _existing(
    engine: Any, table: Any, where: Any, fingerprint: str, now: datetime, identity: Identity, registry: Any
) -> int | Response | None:
    """The claimed row's id to run the request, its stored response, or ``None`` to run
    it without the key (the stored response is outside the caller's current scope)."""
    with engine.begin() as conn:
        row = conn.execute(select(table).where(where)).one_or_none()
        if row is None:
            raise errors.Conflict(
                "The idempotency key was just released; retry.", headers={"Retry-After": "1"}
            )
        if row.fingerprint != fingerprint:
            raise errors.ValidationFailed(
                [
                    {
                        "pointer": f"/{HEADER}",
                        "in": "header",
                        "detail": "This key was used with a different request body.",
                    }
                ]
            )
        if row.state == "done":
            scope = orjson.loads(row.scope or "[]")
            if not all(identity.can_access_warehouse(code) for code in scope):
                return None
            body = _unseal(registry, bytes(row.response_body))
            response = ApiResponse(body=body, status=row.response_status, charset=None)
            response.headers.update(orjson.loads(row.response_headers or "{}"))
            response.headers["Idempotent-Replayed"] = "true"
            return response
        locked_until = aware(row.locked_until)
        if locked_until > now:
            raise errors.Conflict(
                "A request with this idempotency key is still being processed.",
                headers={"Retry-After": "1"},
            )
        # Take over a crashed request's claim; the condition makes it atomic.
        taken = conn.execute(
            update(table)
            .where(table.c.id == row.id, table.c.state == "running", table.c.locked_until <= now)
            .values(locked_until=now + LEASE)
        ).rowcount
        if taken != 1:
            raise errors.Conflict(
                "A request with this idempotency key is still being processed.",
                headers={"Retry-After": "1"},
            )
        return row.id

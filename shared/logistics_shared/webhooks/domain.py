"""Webhook subscriptions: endpoints, their secrets, pings, and the delivery log.

No Pyramid here: :class:`Subscriptions` takes a session, the identity acting and the
time, so the dispatcher, the CLI and tests can call it as the views do.

Who manages what: admins every endpoint, support agents support's (the permission
says so); warehouse staff only endpoints limited to a non-empty subset of their
token's warehouses. They see no other endpoint (a 404, as for one that does not exist)
and may not name another warehouse (a 422 worded as for an unknown one).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, delete, exists, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..db import aware
from ..errors import Conflict, InvalidField, NotFound, PreconditionFailed
from ..identity import Identity
from ..secretbox import Box
from ..settings import Settings
from ..sorting import Sort
from .addresses import parse_networks, url_problem
from .catalogue import PING_EVENT, Catalogue
from .fanout import dispatch_channel, new_delivery, write_deliveries
from .signing import new_secret
from .tables import ENDPOINT_SORTS, WebhookTables

Db = Session | Connection

PING_MESSAGE = "A test message from the logistics suite: your endpoint is reachable."
#: Columns an endpoint's answers never show (Fernet tokens of the secrets).
_HIDDEN = ("secret", "previous_secret")


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))  # de-duplicated, order kept


def _json_list(values: list[str] | None) -> str | None:
    return None if values is None else orjson.dumps(_unique(values)).decode()


def endpoint_out(row: Row[Any]) -> dict[str, Any]:
    data = {k: v for k, v in row._mapping.items() if k not in _HIDDEN}
    data["event_types"] = orjson.loads(data["event_types"])
    data["warehouses"] = None if data["warehouses"] is None else orjson.loads(data["warehouses"])
    return data


def delivery_out(row: Row[Any] | dict[str, Any]) -> dict[str, Any]:
    data = dict(row._mapping) if isinstance(row, Row) else dict(row)
    data["attempt_count"] = data.pop("attempts")
    return data


@dataclass
class Subscriptions:
    """One service's webhook subscriptions."""

    service: str
    tables: WebhookTables
    box: Box
    settings: Settings
    catalogue: Catalogue = field(init=False)

    def __post_init__(self) -> None:
        self.catalogue = Catalogue(self.service)
        self._allow = parse_networks(self.settings.webhook_allow_networks)

    # -- checks ----------------------------------------------------------------------
    def _check_url(self, url: str) -> None:
        problem = url_problem(url, allow_http=self.settings.webhook_allow_http, allow=self._allow)
        if problem:
            raise InvalidField("/url", problem)

    @staticmethod
    def _check_warehouses(actor: Identity, warehouses: list[str] | None) -> None:
        """Staff limit their endpoints to some of their own warehouses."""
        if actor.all_warehouses:
            return
        if not warehouses:
            raise InvalidField("/warehouses", "Name the warehouses whose events this endpoint receives.")
        for code in warehouses:
            if not actor.can_access_warehouse(code):
                raise InvalidField("/warehouses", f"Unknown warehouse {code!r}.")

    @staticmethod
    def _manages(actor: Identity, row: Row[Any]) -> bool:
        if actor.all_warehouses:
            return True
        codes = orjson.loads(row.warehouses) if row.warehouses is not None else []
        return bool(codes) and all(actor.can_access_warehouse(code) for code in codes)

    def managed_row(self, db: Db, endpoint_id: str, actor: Identity) -> Row[Any]:
        e = self.tables.endpoints
        row = None
        if is_uuid(endpoint_id):  # else it names nothing (and never reaches the database)
            row = db.execute(select(e).where(e.c.id == endpoint_id)).first()
        if row is None or not self._manages(actor, row):
            raise NotFound(f"No webhook endpoint {endpoint_id!r}.")
        return row

    def enabled_row(self, db: Db, endpoint_id: str, actor: Identity) -> Row[Any]:
        row = self.managed_row(db, endpoint_id, actor)
        if not row.enabled:
            raise Conflict(
                "The endpoint is disabled: enable it first (PATCH enabled=true).", current_status="disabled"
            )
        return row

    def wake_dispatchers(self, session: Session) -> None:
        """A delivery is due now: tell the dispatchers when the transaction commits."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_notify(dispatch_channel(self.service), "")))

    # -- endpoints -------------------------------------------------------------------
    def create(
        self, session: Session, actor: Identity, data: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """A new endpoint, with its signing secret in plain text (the only time it is shown)."""
        self._check_url(data["url"])
        warehouses = data.get("warehouses")
        self._check_warehouses(actor, warehouses)
        secret = new_secret()
        enabled = data.get("enabled", True)
        values = {
            "id": str(uuid.uuid4()),
            "url": data["url"],
            "description": data.get("description"),
            "event_types": _json_list(data["event_types"]),
            "warehouses": _json_list(warehouses),
            "enabled": enabled,
            "disabled_reason": None if enabled else "manual",
            "disabled_at": None if enabled else now,
            "secret": self.box.encrypt(secret),
            "previous_secret": None,
            "previous_secret_until": None,
            "failing_since": None,
            "created_by": actor.actor,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        e = self.tables.endpoints
        row = session.execute(e.insert().values(**values).returning(*e.c)).one()
        return {**endpoint_out(row), "secret": secret}

    def load(self, db: Db, endpoint_id: str, actor: Identity) -> dict[str, Any]:
        return endpoint_out(self.managed_row(db, endpoint_id, actor))

    def list_(
        self, db: Db, actor: Identity, *, cursor: str | None, limit: int, sort: Sort | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Endpoints oldest first (or as ``sort`` says). Staff's are filtered here (their
        warehouses are a JSON list): a batch with others' endpoints is followed by the next
        until a page is full."""
        sort = ENDPOINT_SORTS.of(sort)
        e = self.tables.endpoints
        stmt = select(e).order_by(*sort.order_by(e.c.created_at, e.c.id)).limit(limit + 1)
        if not actor.all_warehouses:
            stmt = stmt.where(e.c.warehouses.is_not(None))
        after = sort.decode(cursor) if cursor else None
        found: list[dict[str, Any]] = []
        while True:
            batch = stmt
            if after is not None:
                batch = stmt.where(sort.after(e.c.created_at, e.c.id, after))
            rows = db.execute(batch).all()
            found.extend(endpoint_out(r) for r in rows if self._manages(actor, r))
            if len(found) > limit or len(rows) <= limit:
                break
            after = (aware(rows[-1].created_at), rows[-1].id)
        return sort.page(found, limit, lambda r: (r["created_at"], r["id"]))

    def change(
        self,
        session: Session,
        actor: Identity,
        endpoint_id: str,
        changes: dict[str, Any],
        expected_version: int | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Apply a PATCH in one UPDATE guarded by the version read (or ``If-Match``'s)."""
        row = self.managed_row(session, endpoint_id, actor)
        current = endpoint_out(row)
        if expected_version is not None and expected_version != row.version:
            raise PreconditionFailed.stale("webhook endpoint", row.version, expected_version)
        if "url" in changes:
            self._check_url(changes["url"])
        if "warehouses" in changes:
            self._check_warehouses(actor, changes["warehouses"])
        values: dict[str, Any] = {}
        for name in ("url", "description"):
            if name in changes and changes[name] != current[name]:
                values[name] = changes[name]
        for name in ("event_types", "warehouses"):
            if name in changes:
                wanted = None if changes[name] is None else _unique(changes[name])
                if wanted != current[name]:
                    values[name] = _json_list(wanted)
        if changes.get("enabled") is False and row.enabled:
            values.update(enabled=False, disabled_reason="manual", disabled_at=now)
        elif changes.get("enabled") is True and not row.enabled:
            # A fresh start: the dispatcher's failing clock starts again too.
            values.update(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None)
        if not values:
            return current
        return self._update(session, row, values, expected_version, now)

    def _update(
        self, session: Session, row: Row[Any], values: dict[str, Any], expected: int | None, now: datetime
    ) -> dict[str, Any]:
        e = self.tables.endpoints
        updated = session.execute(
            update(e)
            .where(e.c.id == row.id, e.c.version == row.version)
            .values(version=e.c.version + 1, updated_at=now, **values)
            .returning(*e.c)
        ).first()
        if updated is None:
            version = session.execute(select(e.c.version).where(e.c.id == row.id)).scalar()
            if expected is not None and version is not None:
                raise PreconditionFailed.stale("webhook endpoint", version, expected)
            raise Conflict("The endpoint changed while this request ran; fetch it and try again.")
        return endpoint_out(updated)

    def delete(
        self, session: Session, actor: Identity, endpoint_id: str, expected_version: int | None
    ) -> None:
        """The endpoint, its deliveries and their attempts (explicitly: SQLite does not
        enforce the foreign keys' ON DELETE CASCADE), and the messages no one else gets."""
        row = self.managed_row(session, endpoint_id, actor)
        if expected_version is not None and expected_version != row.version:
            raise PreconditionFailed.stale("webhook endpoint", row.version, expected_version)
        d, a, m = self.tables.deliveries, self.tables.attempts, self.tables.messages
        theirs = select(d.c.id).where(d.c.endpoint_id == row.id)
        session.execute(delete(a).where(a.c.delivery_id.in_(theirs)))
        session.execute(delete(d).where(d.c.endpoint_id == row.id))
        # A message is written with its deliveries, so none is older than the endpoint; the
        # bound keeps this on the messages' created_at index.
        session.execute(
            delete(m).where(
                m.c.created_at >= row.created_at, ~exists(select(d.c.id).where(d.c.message_id == m.c.id))
            )
        )
        session.execute(delete(self.tables.endpoints).where(self.tables.endpoints.c.id == row.id))

    def rotate_secret(
        self, session: Session, actor: Identity, endpoint_id: str, now: datetime
    ) -> dict[str, Any]:
        """A new secret (shown once); the old one still signs during the grace period."""
        row = self.managed_row(session, endpoint_id, actor)
        secret = new_secret()
        grace = timedelta(hours=self.settings.webhook_secret_grace_hours)
        values: dict[str, Any] = {"secret": self.box.encrypt(secret)}
        if grace > timedelta(0):
            values.update(previous_secret=row.secret, previous_secret_until=now + grace)
        else:
            values.update(previous_secret=None, previous_secret_until=None)
        return {**self._update(session, row, values, None, now), "secret": secret}

    def ping(self, session: Session, actor: Identity, endpoint_id: str, now: datetime) -> dict[str, Any]:
        """A test message to this endpoint alone: a pending delivery, due now."""
        row = self.enabled_row(session, endpoint_id, actor)
        message_id = str(uuid.uuid4())
        payload = PING_EVENT.render({"endpoint_id": row.id, "message": PING_MESSAGE}, now.isoformat())
        message = {
            "id": message_id,
            "event_type": PING_EVENT.type,
            "warehouse": None,
            "payload": payload.decode(),
            "created_at": now,
        }
        delivery = new_delivery(row.id, message_id, PING_EVENT.type, now)
        write_deliveries(session, self.tables, [message], [delivery], self.service)
        blank = {"last_status_code": None, "last_error": None, "finished_at": None}
        return delivery_out({**blank, **delivery})

    def event_types(self) -> list[dict[str, Any]]:
        listed = [*self.catalogue.events, PING_EVENT]
        return [{"type": e.type, "version": e.version, "description": e.description} for e in listed]

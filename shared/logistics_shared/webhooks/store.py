"""The dispatcher's database side: claiming due deliveries, recording attempts.

Plain synchronous SQLAlchemy, run on a small thread pool by the dispatcher's event
loop: the database is not where a dispatcher waits (the endpoints are), and this
keeps one code path for PostgreSQL and the embedded SQLite default.

Claims are leases: a claimed delivery carries a claim token and ``claimed_until``;
no other dispatcher claims it before then (``FOR UPDATE SKIP LOCKED`` keeps
concurrent claimers apart on PostgreSQL), and a dispatcher starts sending only
while its lease has room for a whole attempt, so two dispatchers never send the
same attempt. A dispatcher killed mid-send leaves its claims to expire: those
deliveries are sent again (duplicates bounded by what was in flight), never lost.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..settings import Settings
from .catalogue import ENDPOINT_DISABLED, Catalogue
from .fanout import new_delivery, subscribers, write_deliveries
from .tables import WebhookTables

#: Bytes of an endpoint's answer kept in the delivery log.
LOGGED_BODY_BYTES = 1024


@dataclass(frozen=True)
class Claimed:
    id: str
    endpoint_id: str
    message_id: str
    url: str
    payload: bytes
    #: Encrypted signing secrets (current first; the previous while in its grace period).
    secrets: tuple[str, ...]
    attempts: int
    claim: str
    claimed_until: datetime


@dataclass(frozen=True)
class Outcome:
    delivery: Claimed
    #: delivered | http_error | timeout | connect_error | refused
    outcome: str
    attempted_at: datetime
    latency_ms: int
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"


class DeliveryStore:
    def __init__(
        self,
        service: str,
        tables: WebhookTables,
        session_factory: sessionmaker[Session],
        *,
        retry_delays: Sequence[float],
        disable_after: timedelta,
        retention: timedelta,
    ) -> None:
        self.service = service
        self.tables = tables
        self.session_factory = session_factory
        self.retry_delays = tuple(retry_delays)
        self.disable_after = disable_after
        self.retention = retention
        self.catalogue = Catalogue(service)
        self.postgres = session_factory.kw["bind"].dialect.name == "postgresql"

    @classmethod
    def from_settings(
        cls, service: str, tables: WebhookTables, session_factory: sessionmaker[Session], settings: Settings
    ) -> DeliveryStore:
        return cls(
            service,
            tables,
            session_factory,
            retry_delays=settings.webhook_retry_delays,
            disable_after=timedelta(hours=settings.webhook_disable_after_hours),
            retention=timedelta(days=settings.webhook_retention_days),
        )

    # -- claiming ---------------------------------------------------------------
    def claim(
        self, limit: int, lease: timedelta, skip: Collection[str] = (), per_endpoint: int | None = None
    ) -> list[Claimed]:
        """Claim up to ``limit`` due deliveries, at most ``per_endpoint`` of any one endpoint and
        none of those in ``skip`` (endpoints this dispatcher already sends its fill to): what an
        endpoint cannot take now stays unclaimed for the next round, or another dispatcher."""
        d, e, m = self.tables.deliveries, self.tables.endpoints, self.tables.messages
        now = datetime.now(UTC)
        token = str(uuid.uuid4())
        conditions = [
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
            # A disabled endpoint's deliveries wait: enabling it again sends them.
            d.c.endpoint_id.in_(select(e.c.id).where(e.c.enabled.is_(True))),
        ]
        if skip:
            conditions.append(d.c.endpoint_id.not_in(list(skip)))
        candidates = select(d.c.id).where(*conditions)
        if per_endpoint is not None:
            # The oldest few of each endpoint: one slow endpoint's backlog cannot fill a claim
            # that would only be given back (and its deliveries keep their order of age).
            rank = func.row_number().over(partition_by=d.c.endpoint_id, order_by=d.c.next_attempt_at)
            ranked = select(d.c.id, rank.label("rank")).where(*conditions).subquery()
            candidates = select(ranked.c.id).where(ranked.c.rank <= per_endpoint)
        due = select(d.c.id).where(d.c.id.in_(candidates)).order_by(d.c.next_attempt_at).limit(limit)
        if self.postgres:
            # Other dispatchers skip what this one is claiming instead of waiting for it.
            due = due.with_for_update(of=d, skip_locked=True)
        until = now + lease
        with self.session_factory() as session, session.begin():
            ids = [
                row.id
                for row in session.execute(
                    update(d)
                    .where(d.c.id.in_(due.scalar_subquery()))
                    .values(claim=token, claimed_until=until)
                    .returning(d.c.id)
                )
            ]
            if not ids:
                return []
            rows = session.execute(
                select(
                    d.c.id,
                    d.c.endpoint_id,
                    d.c.message_id,
                    d.c.attempts,
                    e.c.url,
                    e.c.secret,
                    e.c.previous_secret,
                    e.c.previous_secret_until,
                    m.c.payload,
                )
                .join(e, e.c.id == d.c.endpoint_id)
                .join(m, m.c.id == d.c.message_id)
                .where(d.c.id.in_(ids))
                .order_by(d.c.next_attempt_at)
            ).all()
        claimed = []
        for row in rows:
            secrets: tuple[str, ...] = (row.secret,)
            if row.previous_secret and row.previous_secret_until and _aware(row.previous_secret_until) > now:
                secrets = (row.secret, row.previous_secret)
            claimed.append(
                Claimed(
                    id=row.id,
                    endpoint_id=row.endpoint_id,
                    message_id=row.message_id,
                    url=row.url,
                    payload=row.payload.encode(),
                    secrets=secrets,
                    attempts=row.attempts,
                    claim=token,
                    claimed_until=until,
                )
            )
        return claimed

    def release(self, deliveries: Sequence[Claimed]) -> None:
        """Give claimed deliveries back unsent (shutdown, or more than an endpoint takes now)."""
        if not deliveries:
            return
        d = self.tables.deliveries
        with self.session_factory() as session, session.begin():
            session.execute(
                update(d)
                .where(d.c.id == bindparam("b_id"), d.c.claim == bindparam("b_claim"))
                .values(claim=None, claimed_until=None),
                [{"b_id": x.id, "b_claim": x.claim} for x in deliveries],
            )

    # -- recording --------------------------------------------------------------
    def record(self, outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
        """Write attempts and their deliveries' new state in one transaction; returns
        the endpoints this disabled (failing for longer than ``disable_after``)."""
        if not outcomes:
            return []
        d, e, a = self.tables.deliveries, self.tables.endpoints, self.tables.attempts
        now = datetime.now(UTC)
        attempts = [
            {
                "delivery_id": o.delivery.id,
                "attempted_at": o.attempted_at,
                "outcome": o.outcome,
                "status_code": o.status_code,
                "latency_ms": o.latency_ms,
                "response_body": o.response_body,
                "error": o.error,
            }
            for o in outcomes
        ]
        delivered, retried = [], []
        for o in outcomes:
            values = {
                "b_id": o.delivery.id,
                "b_claim": o.delivery.claim,
                "b_attempts": o.delivery.attempts + 1,
                "b_code": o.status_code,
                "b_error": None if o.ok else (o.error or f"HTTP {o.status_code}"),
            }
            if o.ok:
                delivered.append({**values, "b_status": "delivered", "b_next": None, "b_finished": now})
            elif o.delivery.attempts < len(self.retry_delays):
                delay = self.retry_delays[o.delivery.attempts]
                # Jitter: endpoints that failed together (an outage) do not all come back at once.
                later = now + timedelta(seconds=delay * (1 + random.random() * 0.1))
                retried.append({**values, "b_status": "pending", "b_next": later, "b_finished": None})
            else:
                retried.append({**values, "b_status": "failed", "b_next": None, "b_finished": now})
        with self.session_factory() as session, session.begin():
            # An endpoint deleted while its delivery was in flight took the delivery with it:
            # its attempt has nothing to belong to. The lock keeps a delete from racing this.
            alive = select(d.c.id).where(d.c.id.in_([o.delivery.id for o in outcomes]))
            if self.postgres:
                alive = alive.with_for_update()
            kept = set(session.execute(alive).scalars())
            attempts = [row for row in attempts if row["delivery_id"] in kept]
            outcomes = [o for o in outcomes if o.delivery.id in kept]
            delivered = [row for row in delivered if row["b_id"] in kept]
            retried = [row for row in retried if row["b_id"] in kept]
            if not outcomes:
                return []
            session.execute(a.insert(), attempts)
            # Only while the claim is still ours: a record after the lease ran out (it cannot,
            # the attempt is bounded by timeouts shorter than the lease) would not count twice.
            finish = (
                update(d)
                .where(d.c.id == bindparam("b_id"), d.c.claim == bindparam("b_claim"))
                .values(
                    status=bindparam("b_status"),
                    attempts=bindparam("b_attempts"),
                    next_attempt_at=bindparam("b_next"),
                    finished_at=bindparam("b_finished"),
                    last_status_code=bindparam("b_code"),
                    last_error=bindparam("b_error"),
                    claim=None,
                    claimed_until=None,
                )
            )
            if delivered or retried:
                session.execute(finish, delivered + retried)
            ok_endpoints = {o.delivery.endpoint_id for o in outcomes if o.ok}
            failing = {o.delivery.endpoint_id for o in outcomes if not o.ok} - ok_endpoints
            if ok_endpoints:
                session.execute(
                    update(e)
                    .where(e.c.id.in_(ok_endpoints), e.c.failing_since.is_not(None))
                    .values(failing_since=None)
                )
            disabled: list[dict[str, Any]] = []
            if failing:
                session.execute(
                    update(e)
                    .where(e.c.id.in_(failing), e.c.failing_since.is_(None))
                    .values(failing_since=now)
                )
                disabled = self._disable_failing(session, failing, now)
        return disabled

    def _disable_failing(self, session: Session, candidates: set[str], now: datetime) -> list[dict[str, Any]]:
        e = self.tables.endpoints
        rows = session.execute(
            update(e)
            .where(
                e.c.id.in_(candidates),
                e.c.enabled.is_(True),
                e.c.failing_since < now - self.disable_after,
            )
            .values(
                enabled=False,
                disabled_reason="failing",
                disabled_at=now,
                updated_at=now,
                version=e.c.version + 1,
            )
            .returning(e.c.id, e.c.url, e.c.failing_since)
        ).all()
        disabled = [
            {
                "endpoint_id": row.id,
                "url": row.url,
                "reason": "failing",
                "failing_since": _aware(row.failing_since).isoformat(),
                "disabled_at": now.isoformat(),
            }
            for row in rows
        ]
        if disabled:
            self._announce_disabled(session, disabled, now)
        return disabled

    def _announce_disabled(self, session: Session, disabled: list[dict[str, Any]], now: datetime) -> None:
        """``webhook_endpoint.disabled`` to the service's other endpoints that subscribe to it,
        in the transaction that disables (the disabled one is no longer enabled)."""
        event = self.catalogue.by_type[ENDPOINT_DISABLED]
        targets = [t for t in subscribers(session, self.tables) if t.wants(event, None)]
        messages: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        for data in disabled:
            message_id = str(uuid.uuid4())
            messages.append(
                {
                    "id": message_id,
                    "event_type": event.type,
                    "warehouse": None,
                    "payload": event.render(data, now.isoformat()).decode(),
                    "created_at": now,
                }
            )
            deliveries.extend(new_delivery(t.id, message_id, event.type, now) for t in targets)
        write_deliveries(session, self.tables, messages, deliveries, self.service)

    # -- gauges and housekeeping -----------------------------------------------
    def backlog(self) -> tuple[int, float, dict[str, int]]:
        """(due deliveries, age in seconds of the oldest due one, disabled endpoints by reason)."""
        d, e = self.tables.deliveries, self.tables.endpoints
        now = datetime.now(UTC)
        with self.session_factory() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(d.c.next_attempt_at))
                .select_from(d.join(e, and_(e.c.id == d.c.endpoint_id, e.c.enabled.is_(True))))
                .where(d.c.status == "pending", d.c.next_attempt_at <= now)
            ).one()
            disabled: dict[Any, Any] = dict(
                session.execute(
                    select(e.c.disabled_reason, func.count())
                    .where(e.c.enabled.is_(False))
                    .group_by(e.c.disabled_reason)
                ).all()
            )
        age = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0
        return int(count), max(age, 0.0), {str(k): int(v) for k, v in disabled.items() if k}

    def purge(self, batch: int = 1000) -> int:
        """Delete deliveries (with their attempts) and messages older than the retention."""
        d, a, m = self.tables.deliveries, self.tables.attempts, self.tables.messages
        cutoff = datetime.now(UTC) - self.retention
        with self.session_factory() as session, session.begin():
            old = [r.id for r in session.execute(select(d.c.id).where(d.c.created_at < cutoff).limit(batch))]
            if old:
                session.execute(delete(a).where(a.c.delivery_id.in_(old)))
                session.execute(delete(d).where(d.c.id.in_(old)))
            unused = (
                select(m.c.id)
                .where(m.c.created_at < cutoff, ~select(d.c.id).where(d.c.message_id == m.c.id).exists())
                .limit(batch)
            )
            session.execute(delete(m).where(m.c.id.in_(unused.scalar_subquery())))
        return len(old)


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back naive (they were written in UTC).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

"""Carrier webhooks: HMAC-signed, timestamped, replay-safe.

Signature: ``X-Carrier-Signature: sha256=<hex>`` of
``HMAC-SHA256(carrier secret, "<X-Carrier-Timestamp>." + raw body)``. A
timestamp outside the window is refused even with a valid signature, so a
captured request cannot be replayed later; inside the window a replay finds
the carrier's event id already recorded and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.errors import Unauthorized

from ..models import carriers

#: Seconds a signed request stays acceptable (clock skew plus carrier retries).
REPLAY_WINDOW = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(session: Session, carrier: str, timestamp: str | None, sent: str | None, body: bytes) -> None:
    """Raise 401 unless the request is signed by ``carrier`` within the window.

    Every failure reads the same, so the endpoint does not reveal which
    carriers exist.
    """
    refused = Unauthorized("The webhook signature is missing, wrong or stale.")
    if not timestamp or not sent:
        raise refused
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise refused from None
    secret = session.execute(select(carriers.c.webhook_secret).where(carriers.c.code == carrier)).scalar()
    expected = signature(secret or "no-such-carrier", timestamp, body)
    # Compare before looking at the age: constant work whatever is wrong.
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    matches = hmac.compare_digest(expected.encode(), sent.encode())
    if secret is None or not matches or age > REPLAY_WINDOW:
        raise refused

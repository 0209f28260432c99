"""Carrier webhooks: HMAC-signed, timestamped, replay-safe.

Signature: ``X-Carrier-Signature: sha256=<hex>`` of
``HMAC-SHA256(carrier secret, "<X-Carrier-Timestamp>." + raw body)``. A
timestamp outside the window is refused even with a valid signature, so a
captured request cannot be replayed later; inside the window a replay finds
the carrier's event id already recorded and changes nothing.

The secret is stored encrypted (``carriers.webhook_secret_encrypted``, a
:class:`~logistics_shared.secretbox.SecretBox` token, the app registry's
``"logistics.secretbox"``) and decrypted here for each
request. A carrier that a replica of the previous release created after migration
0009 ran (during a rollout) has only its plaintext, in ``webhook_secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.errors import Unauthorized
from logistics_shared.secretbox import Box, UndecryptableSecret

from ..models import carriers

#: Seconds a signed request stays acceptable (clock skew plus carrier retries).
REPLAY_WINDOW = 300

log = logging.getLogger(__name__)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def carrier_secret(session: Session, box: Box, carrier: str) -> str | None:
    """The carrier's webhook secret in plaintext, or None for an unknown carrier.

    A token no configured key opens (a key removed from ``LOGISTICS_SECRETS_KEY`` too
    soon) is logged and treated as no secret: the carrier's requests are refused
    until the key is back, rather than answered with a 500.
    """
    row = session.execute(
        select(carriers.c.webhook_secret_encrypted, carriers.c.webhook_secret).where(
            carriers.c.code == carrier
        )
    ).first()
    if row is None:
        return None
    if row.webhook_secret_encrypted is None:
        return row.webhook_secret  # written by the previous release during a rollout
    try:
        return box.decrypt(row.webhook_secret_encrypted)
    except UndecryptableSecret:
        log.error("carrier %s: its webhook secret opens with no key of LOGISTICS_SECRETS_KEY", carrier)
        return None


def verify(
    session: Session, box: Box, carrier: str, timestamp: str | None, sent: str | None, body: bytes
) -> None:
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
    secret = carrier_secret(session, box, carrier)
    expected = signature(secret or "no-such-carrier", timestamp, body)
    # Compare before looking at the age: constant work whatever is wrong.
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    matches = hmac.compare_digest(expected.encode(), sent.encode())
    if secret is None or not matches or age > REPLAY_WINDOW:
        raise refused

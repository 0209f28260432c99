"""Standard Webhooks signatures (https://www.standardwebhooks.com/), with the
``standardwebhooks`` package, so receivers verify with any Standard Webhooks library.

While a rotated secret is in its grace period, both signatures are sent (space-
separated in ``webhook-signature``, as the scheme allows): a receiver still holding
the old secret keeps verifying until it switches.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "logistics-webhooks/1 (+Standard Webhooks)"


def new_secret() -> str:
    """A signing secret in the scheme's format: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def headers(
    message_id: str, sent_at: datetime, body: bytes, signing_secrets: Sequence[str]
) -> dict[str, str]:
    """The request headers of one attempt: id, timestamp and one signature per secret."""
    signatures = " ".join(Webhook(secret).sign(message_id, sent_at, body) for secret in signing_secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }

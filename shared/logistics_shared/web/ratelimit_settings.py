"""The rate limiter's settings, read once: which quota applies to which caller and class.

The settings themselves are fields of :class:`~logistics_shared.settings.Settings` (one
``rate_limit_<role>_<class>`` per role and route class, ``rate_limit_webhook`` for signed
inbound webhooks); this module names the classes, checks the values at start-up (so a typo
stops the process with a message naming the setting, not the first request) and turns them
into the table :mod:`logistics_shared.web.ratelimit` reads on every request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..identity import Role

if TYPE_CHECKING:
    from ..settings import Settings

#: Route classes: safe methods, the others, and signed inbound webhooks (limited per sender).
READ, WRITE, WEBHOOK = "read", "write", "webhook"
#: Callers without a valid token, limited per client address.
ANONYMOUS = "anonymous"
ROLES: tuple[str, ...] = (*(role.value for role in Role), ANONYMOUS)
#: Whom the webhook quota is keyed by (the sender a verified signature names).
SENDER = "sender"
#: Storages the limiter accepts: Redis (shared by replicas) or the process's own memory.
STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")
MAX_WINDOW_SECONDS = 86400
#: The limiter runs on every request: a timeout longer than this would let a slow Redis
#: hold every request for it before the limiter gives up and lets them through.
MAX_TIMEOUT_SECONDS = 5.0
#: Other replicas' requests are seen at most this late: longer would make the quota a guess.
MAX_SYNC_SECONDS = 10.0
_PREFIX = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def quota_setting(role: str, klass: str) -> str:
    """The setting holding ``role``'s quota for ``klass`` (``rate_limit_admin_read``)."""
    return f"rate_limit_{role}_{klass}"


def _quota_settings() -> list[str]:
    return [quota_setting(role, klass) for role in ROLES for klass in (READ, WRITE)] + ["rate_limit_webhook"]


def _error(key: str, message: str) -> Exception:
    from ..settings import SettingsError

    return SettingsError(f"setting {key!r} (LOGISTICS_{key.upper()}): {message}")


def check_rate_limit_settings(values: Mapping[str, Any]) -> None:
    """Raise a :class:`~logistics_shared.settings.SettingsError` naming the first bad value.

    Checked whether or not the limiter is on: switching it on later must not be the moment
    a typo made long ago surfaces.
    """
    for key in _quota_settings():
        if values[key] < 0:
            raise _error(key, f"a number of requests per window, 0 (unlimited) or more; got {values[key]}")
    window = values["rate_limit_window_seconds"]
    if window > MAX_WINDOW_SECONDS:
        raise _error("rate_limit_window_seconds", f"at most {MAX_WINDOW_SECONDS} (a day); got {window}")
    timeout = values["rate_limit_timeout"]
    if timeout > MAX_TIMEOUT_SECONDS:
        raise _error(
            "rate_limit_timeout",
            f"at most {MAX_TIMEOUT_SECONDS:g} seconds (the limiter runs on every request); got {timeout:g}",
        )
    sync = values["rate_limit_sync_seconds"]
    if not 0 <= sync <= MAX_SYNC_SECONDS:
        raise _error("rate_limit_sync_seconds", f"0 to {MAX_SYNC_SECONDS:g} seconds; got {sync:g}")
    url = values["rate_limit_storage_url"]
    if url:
        scheme = urlsplit(url).scheme
        if scheme not in STORAGE_SCHEMES or "://" not in url:
            raise _error(
                "rate_limit_storage_url",
                f"expected a URL starting {', '.join(s + '://' for s in STORAGE_SCHEMES)}; got {url!r}",
            )
    for item in values["web_forwarded_allow_ips"].split(","):
        # The limiter believes X-Forwarded-For from these (web/ratelimit.py ClientAddress).
        if item.strip() not in ("", "*"):
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise _error(
                    "web_forwarded_allow_ips", f"{item.strip()!r} is not an address or network (or *)"
                ) from None
    prefix = values["rate_limit_key_prefix"]
    if not _PREFIX.match(prefix):
        raise _error(
            "rate_limit_key_prefix",
            f"1-64 of A-Z a-z 0-9 . _ : - (no spaces); got {prefix!r}",
        )


@dataclass(frozen=True)
class RateLimitConfig:
    """What the limiter needs, resolved from the settings."""

    storage_url: str
    key_prefix: str
    timeout: float
    window: int
    #: Longest a process counts a key's requests locally before adding them to Redis.
    sync_seconds: float
    #: (role or :data:`ANONYMOUS` or :data:`SENDER`, class) -> requests per window; 0: unlimited.
    quotas: Mapping[tuple[str, str], int]

    @property
    def shared(self) -> bool:
        """Whether every replica counts in one place (Redis), not each process on its own."""
        return not self.storage_url.startswith("memory")

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitConfig:
        quotas = {
            (role, klass): int(getattr(settings, quota_setting(role, klass)))
            for role in ROLES
            for klass in (READ, WRITE)
        }
        quotas[(SENDER, WEBHOOK)] = settings.rate_limit_webhook
        return cls(
            # The deployment's Redis unless the limiter is given one of its own; the embedded
            # default (no Redis at all) counts in the process's memory.
            storage_url=settings.rate_limit_storage_url or settings.redis_url or "memory://",
            key_prefix=settings.rate_limit_key_prefix,
            timeout=settings.rate_limit_timeout,
            window=settings.rate_limit_window_seconds,
            sync_seconds=settings.rate_limit_sync_seconds,
            quotas=quotas,
        )

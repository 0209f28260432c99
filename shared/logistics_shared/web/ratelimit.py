"""Rate limits per caller and route class, counted in one place for every replica.

Who: the token's subject (with its role's quota); a request without a valid token is
counted per client address (``X-Forwarded-For`` only from the proxies the settings trust,
``web_forwarded_allow_ips``). What: the route class, ``read`` (GET, HEAD, OPTIONS) or
``write`` (the rest); a signed inbound webhook (an endpoint declaring ``webhook_sender``)
is its own class, counted per sender once its signature is verified, so nobody else can
spend a carrier's budget. Health, readiness, metrics, the OpenAPI document and the docs
are never limited (``ops.PUBLIC_ROUTES``).

The counters live in the ``limits`` package's storages: Redis (``RedisStorage``: an atomic
Lua ``INCRBY``+``EXPIRE``, shared by every replica and process) or, on the embedded default
without Redis, the process's memory (``MemoryStorage``).

Strategy: a **fixed window**, not ``limits``' moving window. A fixed window costs one
Redis round trip per count, a single integer per (caller, class, window) in Redis, and
its reset time is known without asking Redis; a moving window costs two round trips (the
Lua acquire, then the window's statistics for the headers) and keeps a list of up to
*quota* timestamps per key. The price of the fixed window is that a caller may spend up to
twice its quota across a window boundary; the quotas are protective ceilings, not billing,
so that is acceptable. Windows are aligned per key at an offset derived from the key (a
CRC, the same on every replica), so callers that were limited together are not all let
back at the same instant.

Batching: in one bench/ratelimit.py run on the 2-core machine while it was busy (load 7 to
10), a round trip per request cost the hot read about a third of its throughput, so a web process adds
its requests to Redis in batches: ``INCRBY`` by what it counted since its last sync, at the
first request of a window, then at most every ``rate_limit_sync_seconds`` (0.1 s) per key,
and on every request once the estimate is within the last tenth of the quota (so the final
answers are the shared count's). In between, a request is decided on the shared count of
the last sync plus the process's own requests since: other replicas' requests are seen at
most that interval late. ``rate_limit_sync_seconds=0`` counts every request in Redis.

Failure: the limiter **fails open**. A Redis error or a timeout (``rate_limit_timeout``,
a short socket timeout) lets the request that needed Redis through without headers, counts it in
``logistics_rate_limit_fail_open_total``, logs at most once a minute, and skips Redis for
a second, so an outage costs one timeout per process per second, not one per request.
Never a 500.

Headers (draft-ietf-httpapi-ratelimit-headers-09, structured fields): every response to
a limited request carries ``RateLimit-Policy: "read";q=1200;w=60`` (the policy is named
after the class) and ``RateLimit: "read";r=42;t=17`` (remaining, seconds until the window
resets); a refused request is a 429 problem with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyramid.interfaces import IRoutesMapper
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from .. import errors
from ..logs import describe_error, redact
from .ops import PUBLIC_ROUTES
from .problems import render_problem
from .ratelimit_settings import ANONYMOUS, READ, SENDER, WEBHOOK, WRITE, RateLimitConfig

if TYPE_CHECKING:
    from pyramid.config import Configurator

    from ..metrics import RateLimitMetrics
    from ..settings import Settings

log = logging.getLogger(__name__)

#: The registry key of the :class:`RateLimiter` (absent when the limiter is switched off).
LIMITER = "logistics.rate_limiter"
#: Where a request's :class:`Decision` waits for the tween to turn it into headers.
DECISION = "logistics.rate_limit"
#: The draft whose fields the responses carry (README "Rate limits" names it too).
DRAFT = "draft-ietf-httpapi-ratelimit-headers-09"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: After a storage failure, requests skip the storage for this long: while Redis is down
#: each process pays one timeout a second, not one per request.
FAILURE_PAUSE_SECONDS = 1.0
#: At most one warning per this many seconds while the storage keeps failing.
LOG_INTERVAL_SECONDS = 60.0
#: Keys whose local counts a process keeps before it drops those of ended windows.
MAX_LOCAL_COUNTS = 10_000
#: A caller name longer than this (a token's ``sub`` can be anything) is hashed in the key.
MAX_NAME_CHARS = 128


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's count against one quota."""

    policy: str
    quota: int
    window: int
    remaining: int
    #: Seconds until the window resets (at least 1).
    reset: int
    allowed: bool

    def headers(self) -> list[tuple[str, str]]:
        """The draft-09 fields: a List with one Item (the policy's name) and its parameters."""
        return [
            ("RateLimit-Policy", f'"{self.policy}";q={self.quota};w={self.window}'),
            ("RateLimit", f'"{self.policy}";r={self.remaining};t={self.reset}'),
        ]

    def problem(self) -> errors.TooManyRequests:
        return errors.TooManyRequests(
            f"Too many {self.policy} requests: {self.quota} per {self.window} s for this caller; "
            f"retry in {self.reset} s.",
            headers={"Retry-After": str(self.reset)},
        )


@dataclass(slots=True)
class _Count:
    """One key's count in the current window, as this process knows it."""

    index: int
    #: When the window ends (epoch seconds).
    ends: float
    #: The shared count in Redis at the last sync (this process's requests included).
    known: int = 0
    #: Requests counted here since, not yet added to Redis.
    pending: int = 0
    #: When the last sync happened (``time.time()``).
    synced: float = -math.inf


class RateLimiter:
    """Fixed-window counters in a ``limits`` storage, built on first use (no connection at
    configure time; a worker process, which builds the same app, never opens one)."""

    def __init__(self, config: RateLimitConfig, metrics: RateLimitMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._quotas = dict(config.quotas)
        self._window = config.window
        self._storage: Any = None
        self._building = threading.Lock()
        # The process's own view of each key's count: the shared count at its last sync plus
        # what it counted since. In memory the storage is this process: no batching.
        self._sync_seconds = config.sync_seconds if config.shared else 0.0
        self._counts: dict[str, _Count] = {}
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._failing = False
        self._last_report = -math.inf
        self._unchecked_since_report = 0

    def storage(self) -> Any:
        if self._storage is None:
            with self._building:
                if self._storage is None:
                    self._storage = _build_storage(self.config)
        return self._storage

    def hit(self, who: str, klass: str, name: str) -> Decision | None:
        """Count one request of ``name`` (a subject, an address, a sender) as ``who`` (a role,
        :data:`ANONYMOUS` or :data:`SENDER`) in ``klass``; None: not limited (a quota of 0,
        or the storage failed and the request goes through unchecked)."""
        quota = self._quotas.get((who, klass), 0)
        if not quota:
            return None
        now = time.time()
        if len(name) > MAX_NAME_CHARS:
            name = hashlib.sha256(name.encode()).hexdigest()
        window = self._window
        key = f"{klass}/{who}/{name}/{window}"
        # The same offset on every replica (crc32, not hash(): that is salted per process).
        offset = zlib.crc32(key.encode()) % window
        index = int((now + offset) // window)
        ends = (index + 1) * window - offset
        reset = max(1, math.ceil(ends - now))
        with self._lock:
            state = self._counts.get(key)
            if state is None or state.index != index:
                if state is None and len(self._counts) >= MAX_LOCAL_COUNTS:
                    self._forget_ended(now)
                state = self._counts[key] = _Count(index, ends)
            state.pending += 1
            estimate = state.known + state.pending
            # In Redis now: the first request of a window here, every sync interval, and every
            # request of the last tenth of the quota (so the final answers are the shared count's).
            shared = now - state.synced >= self._sync_seconds or quota - estimate < max(1, quota // 10)
            if shared:
                amount, state.pending = state.pending, 0
        if not shared:
            return self._decide(klass, quota, estimate, reset)
        if now < self._paused_until:
            self._unchecked()
            return None
        try:
            count = self.storage().incr(f"{key}/{index}", window, amount=amount)
        except Exception as exc:  # noqa: BLE001 - a limiter must never fail a request
            self._failed(exc, now)
            return None
        with self._lock:
            # Answers of concurrent syncs may arrive out of order: the count only grows.
            state.known = max(state.known, count)
            state.synced = now
            estimate = state.known + state.pending
        if self._failing:
            self._failing = False
            log.warning("rate limiter: %s answers again; limits apply", redact(self.config.storage_url))
        return self._decide(klass, quota, estimate, reset)

    def _decide(self, klass: str, quota: int, count: int, reset: int) -> Decision:
        allowed = count <= quota
        if not allowed:
            self.metrics.limited_by_class[klass].inc()
        return Decision(klass, quota, self._window, max(0, quota - count), reset, allowed)

    def _forget_ended(self, now: float) -> None:
        """Drop the counts of windows that ended (all of them, if none has: they only save
        round trips, Redis has the counts)."""
        ended = [key for key, state in self._counts.items() if state.ends <= now]
        for key in ended:
            del self._counts[key]
        if len(self._counts) >= MAX_LOCAL_COUNTS:
            self._counts.clear()

    def _unchecked(self) -> None:
        self.metrics.fail_open_count.inc()
        self._unchecked_since_report += 1

    def _failed(self, exc: Exception, now: float) -> None:
        self._paused_until = now + FAILURE_PAUSE_SECONDS
        self._failing = True
        self._unchecked()
        if now - self._last_report >= LOG_INTERVAL_SECONDS:
            self._last_report = now
            log.warning(
                "rate limiter: %s failed (%s); requests go through unlimited until it answers "
                "(%d unchecked since the last report)",
                redact(self.config.storage_url),
                describe_error(exc),
                self._unchecked_since_report,
            )
            self._unchecked_since_report = 0


def _build_storage(config: RateLimitConfig) -> Any:
    if not config.shared:
        from limits.storage import MemoryStorage

        return MemoryStorage()
    from limits.storage import RedisStorage
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return RedisStorage(
        config.storage_url,
        key_prefix=config.key_prefix,
        socket_timeout=config.timeout,
        socket_connect_timeout=config.timeout,
        # redis-py retries a failed command three times by default: three timeouts on one
        # request while Redis is unreachable. Failing open is the retry.
        retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]  # passed on to redis.Redis
    )


class ClientAddress:
    """The address a request without a token is counted by.

    ``REMOTE_ADDR`` is the peer, which behind nginx or HAProxy is the balancer. When the peer
    is a trusted proxy (``web_forwarded_allow_ips``, as gunicorn reads it: addresses or
    networks, or ``*``), the client is the right-most ``X-Forwarded-For`` hop that is not
    itself a trusted proxy: every proxy appends the address it saw, and what a client wrote
    on the left is never believed. IPv6 clients are counted per /64, the block one host
    usually holds.
    """

    def __init__(self, trusted: str) -> None:
        items = [item.strip() for item in trusted.split(",") if item.strip()]
        self.everyone = "*" in items
        self.networks = [ipaddress.ip_network(item, strict=False) for item in items if item != "*"]

    def trusts(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return self.everyone or any(address in network for network in self.networks)

    def __call__(self, environ: dict[str, Any]) -> str:
        peer = environ.get("REMOTE_ADDR", "")
        address = _parse(peer)
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded and address is not None and self.trusts(address):
            for hop in reversed(forwarded.split(",")):
                parsed = _parse(hop.strip())
                if parsed is None:
                    break  # not an address: written by the client, past the proxies
                address = parsed
                if not self.trusts(parsed):
                    break
        if address is None:
            return peer or "unknown"
        if address.version == 6:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def limit_webhook_sender(request: Request, sender: str) -> None:
    """Count a signed webhook against its sender's quota (after the signature is verified);
    a 429 problem when the sender is over it."""
    limiter: RateLimiter | None = request.registry.get(LIMITER)
    if limiter is None:
        return
    decision = limiter.hit(SENDER, WEBHOOK, sender)
    if decision is None:
        return
    request.environ[DECISION] = decision
    if not decision.allowed:
        raise decision.problem()


def self_limited_routes(registry: Registry) -> frozenset[str]:
    """Routes whose endpoint counts its requests itself (``@endpoint(webhook_sender=...)``)."""
    found = set()
    for item in registry.introspector.get_category("views") or []:
        meta = getattr(item["introspectable"]["callable"], "__api__", None)
        if meta is not None and meta.webhook_sender:
            found.add(meta.route)
    return frozenset(found)


def rate_limit_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    limiter: RateLimiter | None = registry.get(LIMITER)
    if limiter is None:
        return handler
    mapper = registry.getUtility(IRoutesMapper)
    unlimited = frozenset(PUBLIC_ROUTES)
    self_limited = self_limited_routes(registry)
    client_address = ClientAddress(registry["logistics.settings"].web_forwarded_allow_ips)
    hit = limiter.hit

    def tween(request: Request) -> Response:
        # The router matches again after this; with the indexed mapper that is a dict
        # lookup and one regex, next to a Redis round trip.
        try:
            route = mapper(request)["route"]
        except Exception:  # noqa: BLE001 - an undecodable path: the router answers it (404)
            route = None
        name = route.name if route is not None else None
        if name in unlimited:
            return handler(request)
        if name in self_limited:
            response = handler(request)
            decision = request.environ.get(DECISION)
            if decision is not None:
                response.headerlist.extend(decision.headers())
            return response
        klass = READ if request.method in SAFE_METHODS else WRITE
        identity = request.identity
        if identity is None:
            decision = hit(ANONYMOUS, klass, client_address(request.environ))
        else:
            decision = hit(identity.role.value, klass, identity.subject)
        if decision is None:
            return handler(request)
        if decision.allowed:
            response = handler(request)
        else:
            # The router never runs for it: name the route for the request metrics (a 429 of
            # /v1/stock, not of "unmatched").
            request.matched_route = route
            response = render_problem(request, decision.problem())
        response.headerlist.extend(decision.headers())
        return response

    return tween


def includeme(config: Configurator) -> None:
    """Build the limiter from the settings and put its tween between the observability tween
    (so a 429 is counted, logged and carries a request id) and the transaction manager (so
    a refused write never begins a transaction). Switched off: neither exists."""
    settings: Settings = config.registry["logistics.settings"]
    if not settings.rate_limits_enabled:
        return
    config.registry[LIMITER] = RateLimiter(
        RateLimitConfig.from_settings(settings), config.registry["logistics.metrics"].rate_limit
    )
    config.add_tween(
        "logistics_shared.web.ratelimit.rate_limit_tween_factory",
        under="logistics_shared.web.tweens.observability_tween_factory",
        over="pyramid_tm.tm_tween_factory",
    )

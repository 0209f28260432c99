"""A two-level read cache: in-process (cachetools) in front of Redis (shared).

The local level absorbs hot keys without a network hop; Redis shares a value
between replicas and survives restarts. ``invalidate`` clears both levels
here and Redis for everyone; other replicas' local copies live at most
``local_ttl`` seconds, which bounds how stale a read can be after a change.
Redis trouble never fails a request: the cache degrades to the loader.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from cachetools import TTLCache

from .logs import describe_error

if TYPE_CHECKING:
    from .metrics import CacheMetrics

log = logging.getLogger(__name__)


class TwoLevelCache:
    def __init__(
        self,
        name: str,
        *,
        redis_url: str = "",
        local_ttl: float = 2.0,
        shared_ttl: int = 300,
        size: int = 10_000,
        metrics: CacheMetrics | None = None,
    ) -> None:
        self.name = name
        self.shared_ttl = shared_ttl
        self.local_enabled = local_ttl > 0
        self._local: TTLCache[str, Any] = TTLCache(maxsize=size, ttl=max(local_ttl, 0.001))
        self._lock = threading.Lock()
        self._redis: Any = None
        if redis_url:
            import redis

            # Short timeouts: a slow Redis must cost less than the query it saves.
            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self.stats = {"local": 0, "shared": 0, "miss": 0, "errors": 0}
        # The children are built once: labels() costs a lookup on every call.
        self._count: dict[str, Any] = {}
        self._errors: Any = None
        if metrics is not None:
            service = metrics.service
            for level, result in (("local", "hit"), ("local", "miss"), ("redis", "hit"), ("redis", "miss")):
                self._count[f"{level}_{result}"] = metrics.requests.labels(service, name, level, result)
            self._errors = metrics.errors.labels(service, name)

    def _counted(self, what: str) -> None:
        child = self._count.get(what)
        if child is not None:
            child.inc()

    def reset_local(self) -> None:
        """Forget this process's copies and counters (Redis keeps its own)."""
        with self._lock:
            self._local.clear()
            self.stats = {"local": 0, "shared": 0, "miss": 0, "errors": 0}

    def _key(self, key: str) -> str:
        return f"logistics:{self.name}:{key}"

    def get(self, key: str, loader: Callable[[], Any]) -> Any:
        with self._lock:
            if self.local_enabled and key in self._local:
                self.stats["local"] += 1
                self._counted("local_hit")
                return self._local[key]
        if self.local_enabled:
            self._counted("local_miss")
        if self._redis is not None:
            try:
                raw = self._redis.get(self._key(key))
            except Exception as exc:  # noqa: BLE001 - Redis is an optimisation, never a dependency
                self._error("read", exc)
                raw = None
            self._counted("redis_miss" if raw is None else "redis_hit")
            if raw is not None:
                value = orjson.loads(raw)
                with self._lock:
                    if self.local_enabled:
                        self._local[key] = value
                    self.stats["shared"] += 1
                return value
        value = loader()
        with self._lock:
            self.stats["miss"] += 1
            if value is not None and self.local_enabled:
                self._local[key] = value
        if value is not None and self._redis is not None:
            try:
                # SQLAlchemy row keys are str subclasses, which orjson refuses without this.
                self._redis.set(
                    self._key(key), orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS), ex=self.shared_ttl
                )
            except Exception as exc:  # noqa: BLE001
                self._error("write", exc)
        return value

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._local.pop(key, None)
        if self._redis is not None:
            try:
                self._redis.delete(self._key(key))
            except Exception as exc:  # noqa: BLE001
                # The shared copy expires by itself; until then it may be stale.
                self._error("invalidate", exc)

    def _error(self, what: str, exc: Exception) -> None:
        self.stats["errors"] += 1
        if self._errors is not None:
            self._errors.inc()
        log.warning("cache %s: redis %s failed (%s)", self.name, what, describe_error(exc))

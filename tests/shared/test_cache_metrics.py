"""logistics_cache_requests_total and logistics_cache_errors_total, against the machine's Redis."""

from __future__ import annotations

import uuid

import pytest

from logistics_shared.cache import TwoLevelCache
from logistics_shared.metrics import ServiceMetrics

from ..helpers.metrics import sample, scrape_registry
from ..services import REDIS_URL, need_service


def _counts(metrics: ServiceMetrics, cache: str) -> dict[tuple[str, str], float | None]:
    text = scrape_registry(metrics.registry)
    return {
        (level, result): sample(
            text,
            "logistics_cache_requests_total",
            service="shipping",
            cache=cache,
            level=level,
            result=result,
        )
        for level in ("local", "redis")
        for result in ("hit", "miss")
    }


@pytest.mark.redis
def test_each_level_counts_its_hits_and_misses():
    need_service("Redis", "127.0.0.1", 6379)
    metrics = ServiceMetrics("shipping")
    name = f"m{uuid.uuid4().hex[:8]}"
    first = TwoLevelCache(name, redis_url=REDIS_URL, metrics=metrics.cache)
    first.get("k", lambda: {"v": 1})  # local miss, redis miss, loaded
    first.get("k", lambda: {"v": 1})  # local hit
    # Another replica (same registry here, same labels): local miss, redis hit.
    TwoLevelCache(name, redis_url=REDIS_URL, metrics=metrics.cache).get("k", lambda: {"v": 2})
    assert _counts(metrics, name) == {
        ("local", "hit"): 1,
        ("local", "miss"): 2,
        ("redis", "hit"): 1,
        ("redis", "miss"): 1,
    }
    assert sample(scrape_registry(metrics.registry), "logistics_cache_errors_total", cache=name) == 0


def test_redis_down_counts_errors_and_a_level_switched_off_counts_nothing():
    metrics = ServiceMetrics("shipping")
    cache = TwoLevelCache("down", redis_url="redis://127.0.0.1:9/0", local_ttl=0, metrics=metrics.cache)
    assert cache.get("k", lambda: {"v": 1}) == {"v": 1}  # the read and the write both fail
    counts = _counts(metrics, "down")
    assert counts[("redis", "miss")] == 1
    assert counts[("local", "hit")] == counts[("local", "miss")] == 0
    assert sample(scrape_registry(metrics.registry), "logistics_cache_errors_total", cache="down") == 2

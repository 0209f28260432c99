"""The two-level cache, against the machine's Redis."""

from __future__ import annotations

import uuid

import pytest

from logistics_shared.cache import TwoLevelCache

from ..services import REDIS_URL, need_service

# Uses the machine's Redis (the tests that do say need_service).
pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


def test_local_then_shared_then_loader(redis_url):
    name = f"t{uuid.uuid4().hex[:8]}"
    calls = []

    def load():
        calls.append(1)
        return {"n": len(calls)}

    first = TwoLevelCache(name, redis_url=redis_url)
    assert first.get("k", load) == {"n": 1}
    assert first.get("k", load) == {"n": 1}
    assert first.stats["local"] == 1
    other_replica = TwoLevelCache(name, redis_url=redis_url)
    assert other_replica.get("k", load) == {"n": 1}
    assert other_replica.stats["shared"] == 1
    assert calls == [1]
    first.invalidate("k")
    assert first.get("k", load) == {"n": 2}


def test_redis_down_degrades_to_the_loader():
    cache = TwoLevelCache("down", redis_url="redis://127.0.0.1:9/0")
    assert cache.get("k", lambda: {"v": 1}) == {"v": 1}
    cache.invalidate("k")
    assert cache.get("k", lambda: {"v": 2}) == {"v": 2}
    assert cache.stats["errors"] >= 2


def test_without_redis_it_is_a_local_cache():
    cache = TwoLevelCache("local")
    assert cache.get("k", lambda: [1]) == [1]
    assert cache.get("k", lambda: [2]) == [1]
    cache.invalidate("k")
    assert cache.get("k", lambda: [3]) == [3]


def test_zero_local_lifetime_disables_the_local_level():
    cache = TwoLevelCache("off", local_ttl=0)
    assert cache.get("k", lambda: [1]) == [1]
    assert cache.get("k", lambda: [2]) == [2]
    assert cache.stats["local"] == 0

"""TokenCache: a verified token is trusted for up to its TTL and never past its ``exp``."""

from __future__ import annotations

import pytest

from logistics_shared import security
from logistics_shared.identity import Role
from logistics_shared.security import KeyRing, TokenCache, mint_token

SECRET = "token-cache-secret-0123456789-abcdefghijklmnop"
KEYRING = KeyRing("HS256", SECRET, SECRET, issuer="logistics", audience="logistics", leeway=30)


@pytest.fixture
def clock(monkeypatch):
    """security's time.time(), moved by hand; counts the signature checks."""

    class Clock:
        now = 1_900_000_000.0
        verified = 0

    clock = Clock()
    real_verify = security.verify_token

    def verify(keyring, token):
        clock.verified += 1
        return real_verify(keyring, token)

    monkeypatch.setattr(security.time, "time", lambda: clock.now)
    monkeypatch.setattr(security, "verify_token", verify)
    # PyJWT reads the clock itself (exp): keep it on the same time.
    monkeypatch.setattr("jwt.api_jwt.datetime", _FrozenDatetime(clock))
    return clock


class _FrozenDatetime:
    def __init__(self, clock):
        import datetime

        self._clock, self._datetime = clock, datetime.datetime

    def now(self, tz=None):
        return self._datetime.fromtimestamp(self._clock.now, tz)

    def __getattr__(self, name):
        return getattr(self._datetime, name)


def _token(subject: str, ttl: int = 3600) -> str:
    return mint_token(KEYRING, role=Role.ADMIN, subject=subject, ttl_seconds=ttl)


def test_a_hit_is_not_verified_again_until_the_ttl_has_passed(clock):
    cache = TokenCache(KEYRING, ttl=60)
    token = _token("a")
    assert cache.verify(token).subject == "a"
    clock.now += 59
    assert cache.verify(token).subject == "a"
    assert clock.verified == 1
    clock.now += 2
    assert cache.verify(token).subject == "a"
    assert clock.verified == 2


def test_never_past_the_tokens_exp(clock):
    cache = TokenCache(KEYRING, ttl=60)
    token = _token("short", ttl=10)
    cache.verify(token)
    clock.now += 10 + KEYRING.leeway + 1  # expired, leeway included: within the TTL, but refused
    with pytest.raises(security.InvalidToken, match="expired"):
        cache.verify(token)


def test_a_full_cache_drops_expired_entries_then_its_oldest(clock):
    cache = TokenCache(KEYRING, ttl=60, size=20)
    tokens = [_token(f"s{i}") for i in range(20)]
    for token in tokens[:10]:
        cache.verify(token)
    clock.now += 61  # the first ten are past their TTL
    for token in tokens[10:]:
        cache.verify(token)
    assert len(cache._cache) == 20
    cache.verify(_token("new"))
    assert len(cache._cache) == 11, "the ten expired ones went, nothing else"
    for token in tokens[:9]:  # valid again (re-verified), and the cache is full once more
        cache.verify(token)
    assert len(cache._cache) == 20
    cache.verify(_token("newer"))
    # No expired entry left: the oldest tenth (two) went, so s10 and s11 are verified again.
    assert len(cache._cache) == 19
    before = clock.verified
    cache.verify(tokens[12])
    assert clock.verified == before
    cache.verify(tokens[10])
    assert clock.verified == before + 1

"""The rate limiter's settings: defaults per role and class, bad values refused at start-up
with a message naming the setting, and whom an anonymous request is counted as."""

from __future__ import annotations

import pytest

from logistics_shared.settings import SettingsError, load_settings
from logistics_shared.web.ratelimit import ClientAddress, Decision
from logistics_shared.web.ratelimit_settings import ANONYMOUS, READ, SENDER, WEBHOOK, WRITE, RateLimitConfig


def test_defaults_per_role_and_class():
    config = RateLimitConfig.from_settings(load_settings("inventory", {}, {}))
    assert config.window == 60
    assert config.quotas == {
        ("admin", READ): 6000,
        ("admin", WRITE): 3000,
        ("warehouse_staff", READ): 3000,
        ("warehouse_staff", WRITE): 1200,
        ("support_agent", READ): 3000,
        ("support_agent", WRITE): 1200,
        ("service", READ): 12000,
        ("service", WRITE): 6000,
        (ANONYMOUS, READ): 600,
        (ANONYMOUS, WRITE): 120,
        (SENDER, WEBHOOK): 6000,
    }


def test_the_storage_is_the_deployments_redis_unless_given_its_own_and_memory_without_any():
    def storage(env: dict[str, str]) -> str:
        return RateLimitConfig.from_settings(load_settings("inventory", {}, env)).storage_url

    assert storage({}) == "memory://"
    assert storage({"LOGISTICS_REDIS_URL": "redis://cache:6379/0"}) == "redis://cache:6379/0"
    assert (
        storage(
            {"LOGISTICS_REDIS_URL": "redis://cache/0", "LOGISTICS_RATE_LIMIT_STORAGE_URL": "redis://rl/1"}
        )
        == "redis://rl/1"
    )
    assert (
        load_settings("inventory", {}, {"LOGISTICS_RATE_LIMITS_ENABLED": "false"}).rate_limits_enabled
        is False
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LOGISTICS_RATE_LIMIT_ADMIN_READ": "-1"},
            r"LOGISTICS_RATE_LIMIT_ADMIN_READ.*0 \(unlimited\) or more",
        ),
        ({"LOGISTICS_RATE_LIMIT_SERVICE_WRITE": "lots"}, r"LOGISTICS_RATE_LIMIT_SERVICE_WRITE.*an integer"),
        ({"LOGISTICS_RATE_LIMIT_ANONYMOUS_READ": "1.5"}, r"LOGISTICS_RATE_LIMIT_ANONYMOUS_READ.*an integer"),
        ({"LOGISTICS_RATE_LIMIT_WEBHOOK": "-5"}, r"LOGISTICS_RATE_LIMIT_WEBHOOK.*or more; got -5"),
        ({"LOGISTICS_RATE_LIMIT_WINDOW_SECONDS": "0"}, r"LOGISTICS_RATE_LIMIT_WINDOW_SECONDS.*positive"),
        (
            {"LOGISTICS_RATE_LIMIT_WINDOW_SECONDS": "86401"},
            r"LOGISTICS_RATE_LIMIT_WINDOW_SECONDS.*at most 86400",
        ),
        ({"LOGISTICS_RATE_LIMIT_TIMEOUT": "0"}, r"LOGISTICS_RATE_LIMIT_TIMEOUT.*positive"),
        ({"LOGISTICS_RATE_LIMIT_TIMEOUT": "30"}, r"LOGISTICS_RATE_LIMIT_TIMEOUT.*at most 5 seconds"),
        (
            {"LOGISTICS_RATE_LIMIT_STORAGE_URL": "http://redis:6379"},
            r"LOGISTICS_RATE_LIMIT_STORAGE_URL.*redis://",
        ),
        ({"LOGISTICS_RATE_LIMIT_STORAGE_URL": "memcached://m:11211"}, r"LOGISTICS_RATE_LIMIT_STORAGE_URL"),
        ({"LOGISTICS_RATE_LIMIT_STORAGE_URL": "localhost:6379"}, r"LOGISTICS_RATE_LIMIT_STORAGE_URL"),
        ({"LOGISTICS_RATE_LIMIT_SYNC_SECONDS": "-0.1"}, r"LOGISTICS_RATE_LIMIT_SYNC_SECONDS.*0 to 10"),
        ({"LOGISTICS_RATE_LIMIT_SYNC_SECONDS": "11"}, r"LOGISTICS_RATE_LIMIT_SYNC_SECONDS.*got 11"),
        ({"LOGISTICS_RATE_LIMIT_KEY_PREFIX": "my prefix"}, r"LOGISTICS_RATE_LIMIT_KEY_PREFIX.*no spaces"),
        ({"LOGISTICS_RATE_LIMIT_KEY_PREFIX": "x" * 65}, r"LOGISTICS_RATE_LIMIT_KEY_PREFIX.*1-64"),
        ({"LOGISTICS_RATE_LIMITS_ENABLED": "sometimes"}, r"LOGISTICS_RATE_LIMITS_ENABLED.*boolean"),
        (
            {"LOGISTICS_WEB_FORWARDED_ALLOW_IPS": "10.0.0.0/8,balancer"},
            r"LOGISTICS_WEB_FORWARDED_ALLOW_IPS.*'balancer'",
        ),
        # Checked with the limiter off too: switching it on later must not reveal an old typo.
        (
            {"LOGISTICS_RATE_LIMITS_ENABLED": "false", "LOGISTICS_RATE_LIMIT_ADMIN_WRITE": "-1"},
            r"LOGISTICS_RATE_LIMIT_ADMIN_WRITE",
        ),
    ],
)
def test_a_bad_limit_setting_stops_start_up_naming_it(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings("inventory", {}, env)


def test_zero_means_unlimited_and_is_accepted():
    settings = load_settings("inventory", {}, {"LOGISTICS_RATE_LIMIT_SERVICE_READ": "0"})
    assert RateLimitConfig.from_settings(settings).quotas[("service", READ)] == 0


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "counted_as"),
    [
        ("127.0.0.1", "127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1", "203.0.113.5", "203.0.113.5"),
        # Right to left, past the trusted proxies: the left-most hop is the client's own claim.
        ("127.0.0.1,10.0.0.0/8", "127.0.0.1", "198.51.100.1, 203.0.113.5, 10.1.2.3", "203.0.113.5"),
        ("127.0.0.1", "127.0.0.1", "not-an-address, 203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", "127.0.0.1", "203.0.113.5, not-an-address", "127.0.0.1"),
        # Every hop trusted: the left-most is as far as we can see.
        ("*", "10.0.0.2", "10.0.0.9, 10.0.0.3", "10.0.0.9"),
        # Not from a trusted proxy: the header is the client's, the peer is the client.
        ("127.0.0.1", "198.51.100.7", "203.0.113.5", "198.51.100.7"),
        # IPv6 clients count per /64; an IPv4-mapped address is the IPv4 one.
        ("127.0.0.1,::1", "::1", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("127.0.0.1", "::ffff:203.0.113.5", None, "203.0.113.5"),
        ("127.0.0.1", "", None, "unknown"),
    ],
)
def test_an_anonymous_request_counts_as_the_client_behind_the_trusted_proxies(
    trusted, peer, forwarded, counted_as
):
    environ = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    assert ClientAddress(trusted)(environ) == counted_as


def test_the_fields_are_draft_09_structured_fields():
    decision = Decision("read", 1200, 60, 42, 17, True)
    assert decision.headers() == [
        ("RateLimit-Policy", '"read";q=1200;w=60'),
        ("RateLimit", '"read";r=42;t=17'),
    ]
    problem = Decision("write", 5, 60, 0, 9, False).problem()
    assert (problem.status, problem.headers) == (429, {"Retry-After": "9"})

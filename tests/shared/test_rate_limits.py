"""Rate limits (web/ratelimit.py) through the apps, on the machine's Redis: a 429 problem with
Retry-After and the draft-09 headers, one budget for two replicas, per-carrier webhooks,
the public routes never limited, failing open when Redis is unreachable or stalled, and the
switch that takes the limiter away."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from logistics_shared.web.ratelimit import LIMITER

from ..embedded import eventually
from ..helpers.metrics import sample, scrape_app
from ..helpers.proxy import TcpProxy
from ..helpers.shipping import DHL, event, labelled, post
from ..services import REDIS_URL, need_service

pytestmark = pytest.mark.redis
POLICY = '"{}";q={};w={}'


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the machine's Redis, its keys deleted afterwards."""
    need_service("Redis", "127.0.0.1", 6379)
    name = f"lt-rl-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def limited(service_client, prefix: str, service: str = "inventory", url: str = REDIS_URL, **quotas: int):
    """An app counting in Redis under ``prefix`` over a window of a minute."""
    return service_client(
        service,
        rate_limit_storage_url=url,
        rate_limit_key_prefix=prefix,
        rate_limit_window_seconds=60,
        **quotas,
    )


def fields(response) -> tuple[str | None, str | None]:
    return response.headers.get("RateLimit-Policy"), response.headers.get("RateLimit")


def remaining(response) -> int:
    """``r`` of the RateLimit field (``"read";r=42;t=17``)."""
    params = dict(part.split("=") for part in response.headers["RateLimit"].split(";")[1:])
    return int(params["r"])


def limited_count(client, klass: str) -> float | None:
    text = scrape_app(client.wsgi)
    return sample(text, "logistics_rate_limited_total", service=client.settings.service, **{"class": klass})


def fail_open_count(client) -> float | None:
    return sample(scrape_app(client.wsgi), "logistics_rate_limit_fail_open_total")


def test_over_the_quota_is_a_429_problem_with_retry_after_and_the_draft_09_fields(service_client, prefix):
    client = limited(service_client, prefix, rate_limit_admin_read=3, rate_limit_admin_write=2)
    admin = client.as_()
    assert limited_count(client, "read") == 0, "pre-created at 0"
    answers = [admin.get("/v1/stock") for _ in range(3)]
    for left, answer in zip((2, 1, 0), answers, strict=True):
        policy, state = fields(answer)
        assert policy == POLICY.format("read", 3, 60)
        assert state is not None and state.startswith(f'"read";r={left};t=')
    refused = admin.get("/v1/stock", status=429)
    assert refused.content_type == "application/problem+json"
    assert refused.json["type"] == "urn:logistics:problem:rate-limited"
    assert refused.json["status"] == 429
    assert "3 per 60 s" in refused.json["detail"]
    reset = int(state.rsplit("t=", 1)[1])
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and abs(retry_after - reset) <= 1
    assert fields(refused) == (POLICY.format("read", 3, 60), f'"read";r=0;t={retry_after}')
    assert refused.headers["X-Request-ID"], "answered under the observability tween"
    assert limited_count(client, "read") == 1
    # Writes are another class with a budget of their own; a refusal of one is still counted.
    wrote = admin.post_json("/v1/warehouses", {}, status=422)
    assert fields(wrote)[0] == POLICY.format("write", 2, 60)
    assert remaining(wrote) == 1
    # Another subject of the same role counts on its own.
    assert remaining(client.as_(subject="someone-else").get("/v1/stock")) == 2
    metrics = scrape_app(client.wsgi)
    assert (
        sample(metrics, "logistics_http_requests_total", route="/v1/stock", method="GET", status="429") == 1
    )


def test_two_replicas_share_one_budget(service_client, prefix):
    """Two apps (two replicas: their own processes' worth of state) on one Redis prefix,
    every request counted in Redis at once (no sync interval)."""
    first = limited(service_client, prefix, rate_limit_warehouse_staff_read=4, rate_limit_sync_seconds=0)
    second = limited(service_client, prefix, rate_limit_warehouse_staff_read=4, rate_limit_sync_seconds=0)
    token = first.token("warehouse_staff", ("AMS",), subject="staff-7")
    auth = {"Authorization": f"Bearer {token}"}
    apps = [first.anonymous, second.anonymous]
    seen = [apps[n % 2].get("/v1/stock", headers=auth, status="*") for n in range(6)]
    assert [r.status_int for r in seen] == [200, 200, 200, 200, 429, 429]
    assert [remaining(r) for r in seen[:4]] == [3, 2, 1, 0], "each replica sees the other's requests"
    assert limited_count(first, "read") == 1 and limited_count(second, "read") == 1


def test_with_the_default_sync_interval_a_replica_sees_what_another_spent(service_client, prefix):
    """A replica counts locally for up to 0.1 s, but its first request in a window and the last
    tenth of a quota go to Redis: what replica A spent, B refuses at once."""
    first = limited(service_client, prefix, rate_limit_admin_write=10)
    second = limited(service_client, prefix, rate_limit_admin_write=10)
    assert first.settings.rate_limit_sync_seconds == 0.1
    token = first.token(subject="integration-1")
    auth = {"Authorization": f"Bearer {token}"}
    spent = [first.anonymous.post_json("/v1/warehouses", {}, headers=auth, status="*") for _ in range(10)]
    assert [r.status_int for r in spent] == [422] * 10
    assert [remaining(r) for r in spent] == list(range(9, -1, -1))
    assert second.anonymous.post_json("/v1/warehouses", {}, headers=auth, status="*").status_int == 429
    assert first.anonymous.post_json("/v1/warehouses", {}, headers=auth, status="*").status_int == 429


def test_a_carrier_webhook_is_limited_per_carrier_after_its_signature(service_client, prefix):
    ship = limited(service_client, prefix, "shipping", rate_limit_webhook=2)
    _, number = labelled(ship)
    accepted = post(ship, event(number, "ev-1"))
    assert fields(accepted)[0] == POLICY.format("webhook", 2, 60)
    assert remaining(accepted) == 1
    assert post(ship, event(number, "ev-1")).json["result"] == "duplicate"  # still a request of POSTNL's
    refused = post(ship, event(number, "ev-3"), status=429)
    assert refused.content_type == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert fields(refused)[1].startswith('"webhook";r=0;')
    assert limited_count(ship, "webhook") == 1
    # Unsigned requests are refused before they are counted: nobody spends a carrier's budget.
    stranger = post(ship, event(number, "ev-4"), sign=False, status=401)
    assert fields(stranger) == (None, None)
    # Another carrier has its own budget (a signed DHL request for an unknown parcel: 422).
    other = post(ship, event("JD000000000"), carrier="DHL", secret=DHL["webhook_secret"], status=422)
    assert remaining(other) == 1
    # Staff calls are another class: the carriers' spending is not theirs.
    assert fields(ship.as_().get("/v1/shipments"))[0] == POLICY.format("read", 6000, 60)


def test_health_readiness_metrics_and_docs_are_never_limited(service_client, prefix):
    client = limited(service_client, prefix, rate_limit_anonymous_read=1)
    public = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]
    for _ in range(3):
        for path in public:
            answer = client.anonymous.get(path)
            assert answer.status_int == 200, path
            assert fields(answer) == (None, None), path
    # The API itself is: one anonymous read, then 429 (a 401 is counted like any answer).
    first = client.anonymous.get("/v1/stock", status=401)
    assert fields(first)[0] == POLICY.format("read", 1, 60)
    client.anonymous.get("/v1/stock", status=429)


def test_anonymous_callers_count_by_the_address_the_trusted_balancer_forwarded(service_client, prefix):
    client = limited(service_client, prefix, rate_limit_anonymous_read=1)
    balancer = {"REMOTE_ADDR": "127.0.0.1"}

    def get(forwarded: str | None, peer: dict[str, str] = balancer, status: int = 401):
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return client.anonymous.get("/v1/stock", headers=headers, extra_environ=peer, status=status)

    get("203.0.113.5")
    get("203.0.113.5", status=429)
    get("203.0.113.6")  # another client behind the same balancer
    # What a client writes on the left is not believed: the balancer appended the real address.
    get("198.51.100.1, 203.0.113.5", status=429)
    # From a peer that is no trusted proxy, X-Forwarded-For is ignored: the peer is the client.
    stranger = {"REMOTE_ADDR": "198.51.100.7"}
    get("203.0.113.77", peer=stranger)
    get("203.0.113.78", peer=stranger, status=429)


def test_redis_unreachable_fails_open_and_counts_it(service_client, caplog):
    port = closed_port()
    client = service_client(
        "inventory", rate_limit_storage_url=f"redis://127.0.0.1:{port}/0", rate_limit_admin_read=1
    )
    admin = client.as_()
    with caplog.at_level("WARNING", logger="logistics_shared.web.ratelimit"):
        for _ in range(3):
            answer = admin.get("/v1/stock")
            assert answer.status_int == 200
            assert fields(answer) == (None, None), "nothing was counted: no fields"
    assert fail_open_count(client) == 3
    # One line for the outage, not one per request: naming the storage and the driver's words.
    warnings = [r.getMessage() for r in caplog.records if r.name == "logistics_shared.web.ratelimit"]
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{port}" in warnings[0] and "unlimited" in warnings[0]
    assert "Connection refused" in warnings[0] or "ConnectionError" in warnings[0]


def test_a_cut_or_stalled_redis_fails_open_and_limits_again_once_it_answers(service_client, prefix):
    need_service("Redis", "127.0.0.1", 6379)
    proxy = TcpProxy("127.0.0.1", 6379)
    try:
        client = limited(
            service_client,
            prefix,
            url=f"redis://127.0.0.1:{proxy.port}/0",
            rate_limit_admin_read=1000,
            rate_limit_sync_seconds=0,  # every request asks Redis: none is decided on a local count
        )
        admin = client.as_()
        assert remaining(admin.get("/v1/stock")) == 999
        proxy.cut()
        answer = admin.get("/v1/stock")
        assert answer.status_int == 200 and fields(answer) == (None, None)
        assert fail_open_count(client) == 1
        proxy.heal()
        back = eventually(lambda: fields(found := admin.get("/v1/stock"))[1] and found, 10, "limits again")
        assert remaining(back) < 999
        proxy.stall()  # connected, but Redis never answers: the socket timeout lets it through
        before = fail_open_count(client)
        assert fields(admin.get("/v1/stock")) == (None, None)
        assert fail_open_count(client) == before + 1
    finally:
        proxy.close()


def test_switched_off_there_is_no_limiter_no_fields_and_no_429_in_the_document(service_client):
    client = service_client("inventory", rate_limits_enabled="false", rate_limit_admin_read=1)
    assert LIMITER not in client.registry
    for _ in range(3):
        assert fields(client.as_().get("/v1/stock")) == (None, None)
    operation = client.anonymous.get("/openapi.json").json["paths"]["/v1/stock"]["get"]
    assert "429" not in operation["responses"]
    assert "RateLimit" not in operation["responses"]["200"].get("headers", {})


def test_the_document_states_the_429_and_the_fields_of_every_limited_operation(service_client):
    client = service_client("shipping")
    document = client.anonymous.get("/openapi.json").json
    assert set(document["components"]["headers"]) == {"RateLimit", "RateLimit-Policy"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "429" in responses, f"{method} {path}"
            assert "Retry-After" in responses["429"]["headers"]
            for status, response in responses.items():
                assert {"RateLimit", "RateLimit-Policy"} <= set(response.get("headers", {})), (
                    f"{method} {path} {status}"
                )


def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, never listening)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

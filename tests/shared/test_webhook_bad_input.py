"""Bad input on every webhook route of shipping and support (the table machinery is
tests/badinput.py): the right 4xx, an RFC 9457 problem pointing at the field, nothing
written. Staff of another warehouse meet a hidden endpoint exactly as an unknown one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from ..badinput import DELETE, Case, Twin, action_envelope, envelope, invalid, js, run_table
from ..conftest import Client
from ..helpers.webhooks import WEBHOOK_SERVICES, add_delivery, collection, endpoint_body

TEXTS = ("", 5, [], "a\x00b")
SINCE = {"since": "2026-11-01T00:00:00Z"}
BAD_IDS = ("not-a-uuid", "%FF", "x" * 1000)


@dataclass
class World:
    service: str
    endpoint: str  # enabled (in shipping: limited to AMS)
    disabled: str
    failed: str  # a failed delivery of endpoint
    pending: str  # a pending one
    foreign: str  # a delivery of the disabled endpoint

    @property
    def base(self) -> str:
        return f"{collection(self.service)}/{self.endpoint}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


@pytest.fixture(params=WEBHOOK_SERVICES)
def client(service_client, backend, request) -> Client:
    return service_client(request.param, backend)


def service_of(client: Client) -> str:
    return client.registry["logistics.service"].name


def body(service: str) -> dict:
    return endpoint_body(service, **({"warehouses": ["AMS"]} if service == "shipping" else {}))


def build(client: Client) -> World:
    service = service_of(client)
    admin = client.as_()
    endpoint = admin.post_json(collection(service), body(service), headers={"Idempotency-Key": "k-1"}).json[
        "id"
    ]
    disabled = admin.post_json(collection(service), endpoint_body(service, enabled=False)).json["id"]
    return World(
        service,
        endpoint,
        disabled,
        add_delivery(client, endpoint, status="failed"),
        add_delivery(client, endpoint, status="pending"),
        add_delivery(client, disabled, status="failed"),
    )


def not_managers(service: str, m: str, p: str, raw: bytes | None) -> list[Case]:
    others = ("service", "support_agent") if service == "shipping" else ("service", "warehouse_staff")
    return [Case(f"as {role}", m, p, raw, 403, role=role, warehouses=("AMS",)) for role in others]


def bad_ids(m: str, service: str, template: str, raw: bytes | None, **kw) -> list[Case]:
    unknown = str(uuid.uuid4())
    paths = [template.format(id=i) for i in (unknown, *BAD_IDS)]
    return [Case(f"id {p[len(collection(service)) :][:20]}", m, p, raw, 404, **kw) for p in paths]


def test_create_bad_input(client: Client) -> None:
    world = build(client)
    service, m, p = world.service, "POST", collection(world.service)
    base = body(service)
    prefix = "shipment" if service == "shipping" else "ticket"
    cases = [
        *envelope(m, p, base, client.settings.max_body_bytes),
        *invalid(m, p, base, "/url", (*TEXTS, None, DELETE, "ftp://hooks.example.com/", "hooks.example.com",
                                       "https://", "https://a b", "https://hooks.example.com/#x",
                                       "https://hooks.example.com\\@evil", "HTTPS://hooks.example.com/",
                                       "http://hooks.example.com/", "https://127.0.0.1/", "https://[::1]/",
                                       "https://10.0.0.1/", "https://169.254.169.254/", "https://localhost/",
                                       "https://u:p@hooks.example.com/", "https://2130706433/",
                                       "https://hooks.example.com:99999/", "https://é.example.com/",
                                       "https://hooks.example.com/" + "x" * 2000)),
        *invalid(m, p, base, "/event_types", (None, f"{prefix}.*", [], {"a": 1}, ["*"] * 51, DELETE)),
        *invalid(m, p, base, "/event_types/0", ("", None, 5, prefix, f"{prefix}*", f"{prefix.upper()}.*",
                                                "nothing.*", f"{prefix}.?", "**", f"{prefix}.*.x", "a" * 101,
                                                "inventory.*", "webhook_endpoint.ping")),
        *invalid(m, p, base, "/description", (*TEXTS, "x" * 501)),
        *invalid(m, p, base, "/enabled", (1, 0, "true", None, "yes")),
        *invalid(m, p, base, "/secret", ("whsec_mine",)),
        *invalid(m, p, base, "/id", (str(uuid.uuid4()),)),
        *invalid(m, p, base, "/version", (1,)),
        *invalid(m, p, base, "/disabled_reason", ("manual",)),
        Case("Idempotency-Key reused with another body", m, p, js({**base, "description": "x"}), 422,
             ("/Idempotency-Key",), headers=(("Idempotency-Key", "k-1"),)),
        Case("Idempotency-Key over 255 characters", m, p, js(base), 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        *not_managers(service, m, p, js(base)),
    ]  # fmt: skip
    twins: tuple[Twin, ...] = ()
    if service == "shipping":
        staff = {"role": "warehouse_staff", "warehouses": ("AMS",)}
        cases += [
            *invalid(m, p, base, "/warehouses", ("AMS", [], 5, ["AMS"] * 51), **staff),
            *invalid(m, p, base, "/warehouses", (DELETE, None, ["RTM"], ["AMS", "RTM"]), **staff),
            *invalid(m, p, base, "/warehouses/0", ("has space", "", 5, None, "x" * 33)),
        ]
        twins = (
            Twin(Case("foreign", m, p, js({**base, "warehouses": ["RTM"]}), 422, **staff),
                 Case("unknown", m, p, js({**base, "warehouses": ["NOPE"]}), 422, **staff), "RTM", "NOPE"),
        )  # fmt: skip
    else:
        cases += invalid(m, p, base, "/warehouses", (["AMS"], None))  # no warehouse events here
    run_table(client, cases, twins)


def test_update_bad_input(client: Client) -> None:
    world = build(client)
    service, m, p = world.service, "PATCH", world.base
    base = {"description": "ERP"}
    cases = [
        *envelope(m, p, base, client.settings.max_body_bytes),
        Case("no field to change", m, p, b"{}", 422, ("/",)),
        *invalid(m, p, base, "/url", (None, "", "ftp://x", "http://hooks.example.com/", "https://10.1.1.1/")),
        *invalid(m, p, base, "/event_types", (None, [], "*")),
        *invalid(m, p, {**base, "event_types": ["*"]}, "/event_types/0", ("", "nothing.*", None)),
        *invalid(m, p, base, "/description", TEXTS),
        *invalid(m, p, base, "/enabled", (None, 1, "false")),
        *invalid(m, p, base, "/secret", ("whsec_mine",)),
        *invalid(m, p, base, "/disabled_reason", (None,)),
        *invalid(m, p, base, "/failing_since", (None,)),
        Case("stale If-Match", m, p, js(base), 412, headers=(("If-Match", '"7"'),)),
        Case("If-Match that is no ETag", m, p, js(base), 412, headers=(("If-Match", "garbage"),)),
        *bad_ids(m, service, collection(service) + "/{id}", js(base)),
        *not_managers(service, m, p, js(base)),
    ]
    if service == "shipping":
        staff = {"role": "warehouse_staff", "warehouses": ("AMS",)}
        cases += invalid(m, p, base, "/warehouses", (None, [], ["RTM"]), **staff)
        cases += invalid(m, p, {**base, "warehouses": ["AMS"]}, "/warehouses/0", ("has space",))
    run_table(client, cases)


def test_delete_bad_input(client: Client) -> None:
    world = build(client)
    service, m, p = world.service, "DELETE", world.base
    cases = [
        Case("stale If-Match", m, p, None, 412, content_type=None, headers=(("If-Match", '"7"'),)),
        Case("a query parameter", m, p + "?force=1", None, 422, ("/force",), content_type=None),
        *bad_ids(m, service, collection(service) + "/{id}", None, content_type=None),
        *not_managers(service, m, p, None),
    ]
    run_table(client, cases)


@pytest.mark.parametrize("action", ["rotate-secret", "ping"])
def test_endpoint_actions_bad_input(client: Client, action: str) -> None:
    world = build(client)
    service, m, p = world.service, "POST", f"{world.base}/{action}"
    cases = [
        *action_envelope(m, p, {}, client.settings.max_body_bytes),
        *bad_ids(m, service, collection(service) + "/{id}/" + action, b"{}"),
        *not_managers(service, m, p, b"{}"),
    ]
    if action == "ping":
        cases.append(
            Case("a disabled endpoint", m, f"{collection(service)}/{world.disabled}/ping", b"{}", 409)
        )
    run_table(client, cases)


def test_redeliver_bad_input(client: Client) -> None:
    world = build(client)
    service, m = world.service, "POST"
    p = f"{world.base}/deliveries/{world.failed}/redeliver"
    disabled, logged = f"{collection(service)}/{world.disabled}", f"{world.base}/deliveries"
    unknown = str(uuid.uuid4())
    cases = [
        *action_envelope(m, p, {}, client.settings.max_body_bytes),
        Case("pending already", m, f"{world.base}/deliveries/{world.pending}/redeliver", b"{}", 409),
        Case("another endpoint's", m, f"{world.base}/deliveries/{world.foreign}/redeliver", b"{}", 404),
        Case("a disabled endpoint", m, f"{disabled}/deliveries/{world.foreign}/redeliver", b"{}", 409),
        Case("unknown delivery", m, f"{world.base}/deliveries/{unknown}/redeliver", b"{}", 404),
        *[Case(f"delivery {i[:9]}", m, f"{logged}/{i}/redeliver", b"{}", 404) for i in BAD_IDS],
        *bad_ids(m, service, collection(service) + "/{id}/deliveries/" + world.failed + "/redeliver", b"{}"),
        *not_managers(service, m, p, b"{}"),
    ]  # fmt: skip
    run_table(client, cases)


def test_redeliver_failed_bad_input(client: Client) -> None:
    world = build(client)
    service, m, p = world.service, "POST", f"{world.base}/redeliver-failed"
    times = (None, "", 5, "yesterday", "2026-11-01", "2026-11-01T00:00:00", "1999-12-31T23:00:00Z",
             "3000-01-01T00:00:00Z", "2026-13-01T00:00:00Z")  # fmt: skip
    cases = [
        *envelope(m, p, SINCE, client.settings.max_body_bytes),
        *invalid(m, p, SINCE, "/since", (*times, DELETE)),
        *invalid(m, p, SINCE, "/until", (*times[1:], "2026-10-31T00:00:00Z", SINCE["since"])),
        *invalid(m, p, SINCE, "/status", ("failed",)),
        Case(
            "a disabled endpoint",
            m,
            f"{collection(service)}/{world.disabled}/redeliver-failed",
            js(SINCE),
            409,
        ),
        *bad_ids(m, service, collection(service) + "/{id}/redeliver-failed", js(SINCE)),
        *not_managers(service, m, p, js(SINCE)),
    ]
    run_table(client, cases)


def get(path: str, status: int, *pointers: str, **kw) -> Case:
    return Case(path, "GET", path, None, status, pointers, content_type=None, **kw)


def test_reads_with_bad_parameters_and_hidden_endpoints(client: Client) -> None:
    world = build(client)
    service, hooks = world.service, collection(world.service)
    deliveries = f"{world.base}/deliveries"
    cases = [
        get(f"{hooks}?limit=0", 422, "/limit"),
        get(f"{hooks}?limit=201", 422, "/limit"),
        get(f"{hooks}?limit=x", 422, "/limit"),
        get(f"{hooks}?cursor=garbage", 422, "/cursor"),
        get(f"{hooks}?cursor=!!", 422, "/cursor"),
        get(f"{hooks}?bogus=1", 422, "/bogus"),
        get(f"{deliveries}?status=lost", 422, "/status"),
        get(f"{deliveries}?event_type=nothing.at_all", 422, "/event_type"),
        get(f"{deliveries}?event_type=*", 422, "/event_type"),
        get(f"{deliveries}?since=yesterday", 422, "/since"),
        get(f"{deliveries}?until=2026-11-01", 422, "/until"),
        get(f"{deliveries}?cursor=garbage", 422, "/cursor"),
        get(f"{deliveries}?limit=201", 422, "/limit"),
        get(f"{deliveries}/{world.foreign}", 404),
        *[get(f"{deliveries}/{i}", 404) for i in (str(uuid.uuid4()), *BAD_IDS)],
        *[get(f"{hooks}/{i}", 404) for i in (str(uuid.uuid4()), *BAD_IDS)],
        *[get(f"{hooks}/{i}/deliveries", 404) for i in (str(uuid.uuid4()), *BAD_IDS)],
        get(f"/v1/{service}/webhook-event-types?limit=1", 422, "/limit"),
    ]
    twins: tuple[Twin, ...] = ()
    if service == "shipping":
        staff = {"role": "warehouse_staff", "warehouses": ("RTM",)}
        unknown = str(uuid.uuid4())
        cases += [get(f"{hooks}/{world.endpoint}", 404, **staff), get(deliveries, 404, **staff)]
        twins = (
            Twin(get(f"{hooks}/{world.endpoint}", 404, **staff), get(f"{hooks}/{unknown}", 404, **staff),
                 world.endpoint, unknown),
            Twin(get(deliveries, 404, **staff), get(f"{hooks}/{unknown}/deliveries", 404, **staff),
                 world.endpoint, unknown),
        )  # fmt: skip
    run_table(client, cases, twins)

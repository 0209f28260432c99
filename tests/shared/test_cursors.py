"""What a client can put in a URL that no service may answer with a 500 (or a 200):
a made-up page cursor, and control characters (NUL above all: PostgreSQL text
cannot hold it) in a query filter or a path segment. Cursors and filters are a
422 at their pointer, a path is a 404.
"""

from __future__ import annotations

import base64

import pytest


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


GARBAGE = (
    "garbage",  # not base64 of anything with the right parts
    "%%%",  # not base64 at all
    cursor("a\x1fb\x1fc"),  # too many parts
    cursor("not-a-date\x1fsome-id"),  # two parts, but no timestamp
    cursor("\x00"),  # one part: a NUL
    cursor("2026-01-01T00:00:00+00:00\x1f\x00"),  # two parts, a NUL id
)
#: For the lists paged by a numeric row id, made-up ids too.
NOT_IDS = (
    cursor("9" * 30),  # beyond any integer column
    cursor("\u00b2"),  # "²": str.isdigit() says yes, int() says no
    cursor("1_0"),  # int() reads 10
    cursor(" 7"),  # int() reads 7
    cursor("-1"),
)
BY_ID = {"/v1/movements", "/v1/stock", "/v1/tickets/{ticket}/comments"}
LISTS = {
    "inventory": ("/v1/items", "/v1/warehouses", "/v1/movements", "/v1/reservations", "/v1/stock"),
    "shipping": ("/v1/shipments", "/v1/carriers"),
    "support": ("/v1/tickets", "/v1/tickets/{ticket}/comments"),
}
#: (list, filter) pairs that take free text.
FILTERS = {
    "inventory": (("/v1/items", "sku_prefix"), ("/v1/reservations", "reference")),
    "shipping": (("/v1/shipments", "reference"),),
    "support": (
        ("/v1/tickets", "assignee"),
        ("/v1/tickets", "q"),
        ("/v1/shipments", "reference"),
        ("/v1/shipments", "tracking_number"),
    ),
}
#: Paths whose last segment is an id, code or SKU looked up in the database.
PATHS = {
    "inventory": ("/v1/items/{}", "/v1/warehouses/{}", "/v1/reservations/{}"),
    "shipping": ("/v1/shipments/{}", "/v1/carriers/{}", "/v1/tracking/{}", "/v1/shipments/{}/label"),
    "support": ("/v1/tickets/{}", "/v1/shipments/{}", "/v1/sla-policies/{}"),
}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


def pointers(res) -> list[str]:
    return [e["pointer"] for e in res.json.get("errors", [])] if res.status_int == 422 else []


@pytest.mark.parametrize("service", sorted(LISTS))
def test_a_made_up_cursor_is_a_422(service_client, service, backend):
    client = service_client(service, backend)
    admin = client.as_()
    ticket = ""
    if service == "support":
        ticket = admin.post_json("/v1/tickets", {"subject": "s", "description": "d"}).json["id"]
    failures = []
    for template in LISTS[service]:
        path = template.format(ticket=ticket)
        for value in GARBAGE + (NOT_IDS if template in BY_ID else ()):
            res = admin.get(path, {"cursor": value}, expect_errors=True)
            if res.status_int != 422 or pointers(res) != ["/cursor"]:
                failures.append(f"{path}?cursor={value!r}: {res.status_int} {res.text[:200]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("service", sorted(LISTS))
def test_control_characters_in_filters_and_paths(service_client, service, backend):
    admin = service_client(service, backend).as_()
    failures = []
    for path, name in FILTERS[service]:
        for value in ("a\x00b", "\x00\x00", "ab\x1b"):
            res = admin.get(path, {name: value}, expect_errors=True)
            if res.status_int != 422 or pointers(res) != [f"/{name}"]:
                failures.append(f"{path}?{name}={value!r}: {res.status_int} {res.text[:200]}")
    for template in PATHS[service]:
        for segment in ("%00", "a%00b", "%1F", "%7F"):
            path = template.format(segment)
            for method in ("GET", "POST", "PATCH", "PUT"):
                res = admin.request(path, method=method, expect_errors=True)
                if res.status_int not in (404, 405) or res.content_type != "application/problem+json":
                    failures.append(f"{method} {path}: {res.status_int} {res.text[:200]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("value", ['"99999999999999999999"', '"1_0"', '" 1"', '"-1"', "W/", '""', '"1'])
def test_an_if_match_that_is_no_etag_of_ours_is_a_412(service_client, backend, value):
    """``If-Match`` names a version: anything but a quoted number of at most 18 digits is a
    412 (a 20-digit one reached the database as a bigint: a 500), and nothing changes."""
    client = service_client("inventory", backend)
    admin = client.as_()
    admin.post_json(
        "/v1/items",
        {"sku": "A-1", "name": "A", "unit_weight_g": 1, "length_mm": 1, "width_mm": 1, "height_mm": 1},
    )
    res = admin.patch_json("/v1/items/A-1", {"name": "B"}, headers={"If-Match": value}, expect_errors=True)
    assert res.status_int == 412 and res.content_type == "application/problem+json", res.text
    assert admin.get("/v1/items/A-1").json["name"] == "A"

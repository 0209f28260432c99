"""A cursor a client made up is a 422 pointing at ``/cursor`` on every paged list,
never a 500 (the cursor is decoded in the service layer, after the query schema)."""

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
)
LISTS = {
    "inventory": ("/v1/items", "/v1/warehouses", "/v1/movements", "/v1/reservations", "/v1/stock"),
    "shipping": ("/v1/shipments", "/v1/carriers"),
    "support": ("/v1/tickets",),
}


@pytest.mark.parametrize("service", sorted(LISTS))
def test_a_made_up_cursor_is_a_422(service_client, service):
    admin = service_client(service).as_()
    failures = []
    for path in LISTS[service]:
        for value in GARBAGE:
            res = admin.get(path, {"cursor": value}, expect_errors=True)
            pointers = [e["pointer"] for e in res.json.get("errors", [])] if res.status_int == 422 else []
            if res.status_int != 422 or pointers != ["/cursor"]:
                failures.append(f"{path}?cursor={value!r}: {res.status_int} {res.text[:200]}")
    assert not failures, "\n".join(failures)

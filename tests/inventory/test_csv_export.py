"""``GET /v1/stock`` and ``GET /v1/movements`` as CSV (``Accept: text/csv``), streamed."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from webob import Request as WebobRequest

from inventory.views import exports
from logistics_shared.web.csv_stream import cell

from .conftest import receive


def rows(res: Any) -> list[dict[str, str]]:
    assert res.content_type == "text/csv" and res.charset == "utf-8"
    return list(csv.DictReader(io.StringIO(res.text)))


def stocked(inv: Any) -> None:
    for warehouse, sku, quantity in (("AMS", "SKU-1", 5), ("AMS", "SKU-2", 7), ("RTM", "SKU-1", 3)):
        receive(inv, warehouse, sku, quantity)
    inv.as_().post_json(
        "/v1/adjustments",
        {"warehouse": "AMS", "sku": "SKU-1", "delta": -2, "reason": "damage", "note": "=HYPERLINK(1)"},
    )


def test_stock_and_movements_as_csv_with_the_json_filters(inv: Any) -> None:
    stocked(inv)
    admin = inv.as_()
    csv_accept = {"Accept": "text/csv"}
    stock = rows(admin.get("/v1/stock", headers=csv_accept))
    assert stock == [
        {"warehouse": "AMS", "sku": "SKU-1", "on_hand": "3", "reserved": "0", "available": "3"},
        {"warehouse": "AMS", "sku": "SKU-2", "on_hand": "7", "reserved": "0", "available": "7"},
        {"warehouse": "RTM", "sku": "SKU-1", "on_hand": "3", "reserved": "0", "available": "3"},
    ]
    assert [r["sku"] for r in rows(admin.get("/v1/stock?warehouse=AMS", headers=csv_accept))] == [
        "SKU-1",
        "SKU-2",
    ]
    assert 'filename="stock.csv"' in admin.get("/v1/stock", headers=csv_accept).headers["Content-Disposition"]

    json_moves = admin.get("/v1/movements?limit=200").json["items"]
    moves = rows(admin.get("/v1/movements", headers=csv_accept))
    assert list(moves[0]) == list(exports.MOVEMENT_COLUMNS)
    assert [(m["id"], m["kind"], m["quantity"]) for m in moves] == [
        (str(m["id"]), m["kind"], str(m["quantity"])) for m in json_moves
    ]
    assert moves[-1]["created_at"] == json_moves[-1]["created_at"]
    # A note typed as a formula is kept as text by a spreadsheet, a negative quantity stays a number.
    adjusted = next(m for m in moves if m["kind"] == "adjustment")
    assert (adjusted["note"], adjusted["quantity"]) == ("'=HYPERLINK(1)", "-2")
    # The export follows ?sort= as the JSON list does (movements: newest first by default).
    oldest_first = admin.get("/v1/movements?limit=200&sort=created_at").json["items"]
    assert [m["id"] for m in rows(admin.get("/v1/movements?sort=created_at", headers=csv_accept))] == [
        str(m["id"]) for m in oldest_first
    ]
    assert [m["id"] for m in oldest_first] == [m["id"] for m in reversed(json_moves)]
    filtered = rows(admin.get("/v1/movements?kind=adjustment&sku=SKU-1", headers=csv_accept))
    assert [(m["kind"], m["warehouse"]) for m in filtered] == [("adjustment", "AMS")]
    # From a cursor on, as the JSON pages continue.
    cursor = admin.get("/v1/movements?limit=2").json["next_cursor"]
    assert [m["id"] for m in rows(admin.get(f"/v1/movements?cursor={cursor}", headers=csv_accept))] == [
        str(m["id"]) for m in json_moves[2:]
    ]


@pytest.mark.parametrize(
    ("accept", "csv_wanted"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("text/csv", True),
        ("text/csv, application/json;q=0.5", True),
        ("application/json, text/csv", False),  # a tie: JSON, the default
        ("text/*", True),
    ],
)
def test_content_negotiation(inv: Any, accept: str | None, csv_wanted: bool) -> None:
    res = inv.as_().get("/v1/stock", headers={"Accept": accept} if accept else {})
    assert res.content_type == ("text/csv" if csv_wanted else "application/json")


def test_staff_export_only_their_warehouses(inv: Any) -> None:
    stocked(inv)
    staff = inv.as_("warehouse_staff", "RTM")
    accept = {"Accept": "text/csv"}
    assert {r["warehouse"] for r in rows(staff.get("/v1/stock", headers=accept))} == {"RTM"}
    assert {r["warehouse"] for r in rows(staff.get("/v1/movements", headers=accept))} == {"RTM"}
    assert rows(staff.get("/v1/stock?warehouse=AMS", headers=accept)) == []


def test_bad_query_is_a_problem_before_any_csv(inv: Any) -> None:
    res = inv.as_().get("/v1/movements?cursor=bm9wZQ", headers={"Accept": "text/csv"}, status=422)
    assert res.content_type == "application/problem+json"
    assert res.json["errors"][0]["pointer"] == "/cursor"
    inv.anonymous.get("/v1/stock", headers={"Accept": "text/csv"}, status=401)


def test_the_export_is_streamed_page_by_page(inv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(7):
        receive(inv, "AMS", "SKU-1", n + 1)
    monkeypatch.setattr(exports, "EXPORT_PAGE", 2)
    request = WebobRequest.blank("/v1/movements", headers={"Accept": "text/csv"})
    request.headers["Authorization"] = f"Bearer {inv.token()}"
    response = request.get_response(inv.wsgi)
    assert response.status_code == 200 and "Content-Length" not in response.headers
    chunks = list(response.app_iter)
    # The header with the first page, then one chunk per page of the list query.
    assert len(chunks) == 4
    assert [len(chunk.splitlines()) for chunk in chunks] == [3, 2, 2, 1]
    assert b"".join(chunks).decode().count("receipt") == 7


@pytest.mark.fresh_app
def test_a_paused_download_holds_no_database_connection(inv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow client reads a page while the next is not fetched yet: no connection is held
    meanwhile (a pinned one per download would empty the read pool; on SQLite it held the
    write lock its BEGIN takes, so every write waited for the download)."""
    for n in range(5):
        receive(inv, "AMS", "SKU-1", n + 1)
    monkeypatch.setattr(exports, "EXPORT_PAGE", 2)
    request = WebobRequest.blank("/v1/movements", headers={"Accept": "text/csv"})
    request.headers["Authorization"] = f"Bearer {inv.token()}"
    response = request.get_response(inv.wsgi)
    pool = inv.registry["dbengine_read"].pool
    chunks = iter(response.app_iter)
    next(chunks)  # the header and the first page
    next(chunks)  # the second page, fetched through a connection of its own
    assert pool.checkedout() == 0
    # A write goes through while the client has not read the rest.
    receive(inv, "AMS", "SKU-1", 9)
    assert b"".join(chunks).decode().count("receipt") == 1  # the fifth; the new one is newer


def test_cells() -> None:
    assert [cell(None), cell(3), cell(-3), cell("-x"), cell("+1"), cell("@a"), cell("ok")] == [
        "",
        "3",
        "-3",
        "'-x",
        "'+1",
        "'@a",
        "ok",
    ]

"""Bad input on every inventory write endpoint (the table machinery: tests/badinput.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import badinput
from ..badinput import (
    DELETE,
    PROBLEM,
    Case,
    Twin,
    action_envelope,
    envelope,
    invalid,
    js,
    patched,
    snapshot,
    with_raw_field,
)
from ..conftest import Client
from ..invariants import assert_inventory_invariants
from .conftest import ADDRESS, receive, seed

QUANTITIES = (0, -1, 1.5, "2", True, None, 2**63, 10**9 + 1, 2**64, 1e10)
MAX_GRAMS, MAX_MM = 10_000_000, 100_000
BAD_SKUS = ("a b", "é", "", "x" * 65, 5, None)
BAD_CODES = ("a b", "é", "", "x" * 33, 5)


def run_table(client: Client, cases: list[Case], twins: tuple[Twin, ...] = ()) -> None:
    badinput.run_table(client, cases, twins, check=assert_inventory_invariants)


def staff_twin(method: str, path: str, base: dict[str, Any], pointer: str, staff_of: str = "AMS") -> Twin:
    """Staff of ``staff_of`` naming RTM (exists, not theirs) vs ZZZ (does not exist)."""
    staff: dict[str, Any] = {"role": "warehouse_staff", "warehouses": (staff_of,)}
    hidden, unknown = (
        Case(f"{pointer} = {code}", method, path, js(patched(base, pointer, code)), 422, (pointer,), **staff)
        for code in ("RTM", "ZZZ")
    )
    return Twin(hidden, unknown, "RTM", "ZZZ")


# --- items ----------------------------------------------------------------------
ITEM = {"sku": "NEW-1", "name": "New item", "unit_weight_g": 1, "length_mm": 1, "width_mm": 1, "height_mm": 1}
SIZES = (-1, 1.5, "2", True, None, 2**63)


def test_create_item_bad_input(inv: Client) -> None:
    m, p = "POST", "/v1/items"
    cases = [
        *envelope(m, p, ITEM, inv.settings.max_body_bytes),
        *invalid(m, p, ITEM, "/sku", BAD_SKUS),
        *invalid(m, p, ITEM, "/sku", (DELETE,)),
        *invalid(m, p, ITEM, "/name", ("x" * 201, "", None, 5, DELETE)),
        *invalid(m, p, ITEM, "/unit_weight_g", (*SIZES, MAX_GRAMS + 1)),
        *invalid(m, p, ITEM, "/length_mm", (*SIZES, MAX_MM + 1)),
        *invalid(m, p, ITEM, "/width_mm", (MAX_MM + 1,)),
        *invalid(m, p, ITEM, "/height_mm", (-1, DELETE)),
        *invalid(m, p, ITEM, "/reorder_point", (-1, 1.5, "2", True, None, 10**9 + 1)),
        Case("existing SKU", m, p, js({**ITEM, "sku": "SKU-1"}), 409),
        Case("existing SKU, with an Idempotency-Key", m, p, js({**ITEM, "sku": "SKU-1"}), 409,
             headers=(("Idempotency-Key", "k-409"),)),
        Case("Idempotency-Key over 255 characters", m, p, js(ITEM), 422, ("/Idempotency-Key",),
             headers=(("Idempotency-Key", "k" * 256),)),
        Case("as warehouse staff", m, p, js(ITEM), 403, role="warehouse_staff", warehouses=("AMS",)),
    ]  # fmt: skip
    run_table(inv, cases)


def test_update_item_bad_input(inv: Client) -> None:
    m, p, base = "PATCH", "/v1/items/SKU-1", {"name": "Renamed"}
    cases = [
        *envelope(m, p, base, inv.settings.max_body_bytes),
        Case("no field to change", m, p, b"{}", 422, ("/",)),
        *invalid(m, p, base, "/name", ("x" * 201, "", None, 5)),
        *invalid(m, p, base, "/sku", ("SKU-9",)),  # the SKU is the identity: not updatable
        *invalid(m, p, base, "/version", (7,)),
        *invalid(m, p, base, "/unit_weight_g", (*SIZES, MAX_GRAMS + 1)),
        *invalid(m, p, base, "/height_mm", (*SIZES, MAX_MM + 1)),
        *invalid(m, p, base, "/reorder_point", (-1, 1.5, "2", True, None)),
        Case("unknown SKU", m, "/v1/items/NOPE", js(base), 404),
        Case("SKU that is no SKU", m, "/v1/items/a%20b", js(base), 404),
        Case("overlong SKU", m, "/v1/items/" + "x" * 65, js(base), 404),
        Case("stale If-Match", m, p, js(base), 412, headers=(("If-Match", '"99"'),)),
        Case("If-Match on an unknown SKU", m, "/v1/items/NOPE", js(base), 404,
             headers=(("If-Match", '"1"'),)),
        Case("If-Match that is no ETag", m, p, js(base), 412, headers=(("If-Match", "garbage"),)),
        Case("as warehouse staff", m, p, js(base), 403, role="warehouse_staff", warehouses=("AMS",)),
    ]  # fmt: skip
    run_table(inv, cases)


# --- warehouses and locations ---------------------------------------------------
WAREHOUSE = {"code": "NEW", "name": "New warehouse", "address": ADDRESS}


def test_create_warehouse_bad_input(inv: Client) -> None:
    m, p = "POST", "/v1/warehouses"
    nested = b"[" * 1000 + b"]" * 1000
    body = {k: v for k, v in WAREHOUSE.items() if k != "address"}
    cases = [
        *envelope(m, p, WAREHOUSE, inv.settings.max_body_bytes),
        *invalid(m, p, WAREHOUSE, "/code", (*BAD_CODES, None, DELETE)),
        *invalid(m, p, WAREHOUSE, "/name", ("x" * 201, "", None)),
        *invalid(m, p, WAREHOUSE, "/address", ("x", [], [ADDRESS], None, 5, DELETE)),
        *invalid(m, p, WAREHOUSE, "/address/bogus", (1,)),
        *invalid(m, p, WAREHOUSE, "/address/country", ("XX", "nl", "NLD", "", "N", 5, None, DELETE)),
        *invalid(m, p, WAREHOUSE, "/address/name", ("x" * 201, "", DELETE)),
        *invalid(m, p, WAREHOUSE, "/address/line1", ("x" * 201, DELETE)),
        *invalid(m, p, WAREHOUSE, "/address/city", ("x" * 101,)),
        *invalid(m, p, WAREHOUSE, "/address/postal_code", ("x" * 21,)),
        *invalid(m, p, WAREHOUSE, "/address/phone", ("x" * 41,)),
        Case("1000 levels in address", m, p, with_raw_field(body, "address", nested), 422, ("/address",)),
        Case("existing code", m, p, js({**WAREHOUSE, "code": "AMS"}), 409),
        Case("as warehouse staff", m, p, js(WAREHOUSE), 403, role="warehouse_staff", warehouses=("AMS",)),
    ]  # fmt: skip
    run_table(inv, cases)


def test_update_warehouse_bad_input(inv: Client) -> None:
    m, p, base = "PATCH", "/v1/warehouses/AMS", {"name": "Renamed", "address": ADDRESS}
    nested = b"[" * 1000 + b"]" * 1000
    cases = [
        *envelope(m, p, base, inv.settings.max_body_bytes),
        Case("no field to change", m, p, b"{}", 422, ("/",)),
        *invalid(m, p, base, "/name", ("x" * 201, "", None, 5)),
        *invalid(m, p, base, "/code", ("OTHER",)),  # the code is the identity: not updatable
        *invalid(m, p, base, "/version", (2,)),
        *invalid(m, p, base, "/address", ("x", [], None, 5)),
        *invalid(m, p, base, "/address/bogus", (1,)),
        *invalid(m, p, base, "/address/country", ("XX", "nl", None, DELETE)),
        *invalid(m, p, base, "/address/line1", ("x" * 201, DELETE)),
        *invalid(m, p, base, "/address/postal_code", ("x" * 21, "ABC")),
        *invalid(m, p, base, "/address/phone", ("x" * 41, "", 5, "a\x00b")),
        Case("1000 levels in address", m, p, with_raw_field({"name": "x"}, "address", nested), 422,
             ("/address",)),
        Case("unknown warehouse", m, "/v1/warehouses/ZZZ", js(base), 404),
        Case("code that is no code", m, "/v1/warehouses/a%20b", js(base), 404),
        Case("stale If-Match", m, p, js(base), 412, headers=(("If-Match", '"99"'),)),
        Case("If-Match on an unknown warehouse", m, "/v1/warehouses/ZZZ", js(base), 404,
             headers=(("If-Match", '"1"'),)),
        Case("If-Match that is no ETag", m, p, js(base), 412, headers=(("If-Match", "garbage"),)),
        Case("as warehouse staff", m, p, js(base), 403, role="warehouse_staff", warehouses=("AMS",)),
        Case("as support", m, p, js(base), 403, role="support_agent"),
    ]  # fmt: skip
    run_table(inv, cases)


def test_create_location_bad_input(inv: Client) -> None:
    inv.as_().post_json("/v1/warehouses/AMS/locations", {"code": "DUP"}, status=201)
    m, p, base = "POST", "/v1/warehouses/AMS/locations", {"code": "A-01", "description": "Aisle A"}
    cases = [
        *envelope(m, p, base, inv.settings.max_body_bytes),
        *invalid(m, p, base, "/code", (*BAD_CODES, None, DELETE)),
        *invalid(m, p, base, "/description", ("x" * 201, "", 5)),
        Case("unknown warehouse", m, "/v1/warehouses/ZZZ/locations", js(base), 404),
        Case("warehouse code that is no code", m, "/v1/warehouses/a%20b/locations", js(base), 404),
        Case("existing location", m, p, js({"code": "DUP"}), 409),
        Case("as warehouse staff", m, p, js(base), 403, role="warehouse_staff", warehouses=("AMS",)),
        Case("as a support agent", m, p, js(base), 403, role="support_agent"),
    ]  # fmt: skip
    run_table(inv, cases)


# --- receipts, adjustments, transfers ----------------------------------------
RECEIPT = {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1}


def references(m: str, p: str, base: dict[str, Any], *, warehouse: str = "/warehouse") -> list[Case]:
    """Well-formed references to things that do not exist or are not the caller's."""
    key = (("Idempotency-Key", "k-unknown"),)
    return [
        *invalid(m, p, base, "/sku", BAD_SKUS),
        *invalid(m, p, base, "/sku", ("NOPE", "SKU-1\n", "sku-1")),
        *invalid(m, p, base, "/sku", ("NOPE",), headers=key),
        *invalid(m, p, base, warehouse, (*BAD_CODES, None, DELETE, "ZZZ", "AMS\n")),
        *invalid(m, p, base, warehouse, ("ZZZ",), headers=key),
        *invalid(m, p, base, warehouse, ("RTM",), role="warehouse_staff", warehouses=("AMS",)),
    ]


def test_receipt_bad_input(inv: Client) -> None:
    inv.as_().post_json("/v1/receipts", RECEIPT, headers={"Idempotency-Key": "k-used"}, status=201)
    inv.as_().post_json("/v1/warehouses/AMS/locations", {"code": "L-AMS"}, status=201)
    m, p = "POST", "/v1/receipts"
    cases = [
        *envelope(m, p, RECEIPT, inv.settings.max_body_bytes),
        *invalid(m, p, RECEIPT, "/quantity", (*QUANTITIES, DELETE)),
        *references(m, p, RECEIPT),
        *invalid(m, p, RECEIPT, "/warehouse", ("AMS",), role="warehouse_staff", warehouses=()),
        *invalid(m, p, RECEIPT, "/location", ("NOPE", "a b", "x" * 33)),
        *invalid(m, p, {**RECEIPT, "warehouse": "RTM"}, "/location", ("L-AMS",)),  # another warehouse's
        *invalid(m, p, RECEIPT, "/reference", ("x" * 101, "", 5)),
        Case("Idempotency-Key reused with another body", m, p, js({**RECEIPT, "quantity": 2}), 422,
             ("/Idempotency-Key",), headers=(("Idempotency-Key", "k-used"),)),
        Case("as a support agent", m, p, js(RECEIPT), 403, role="support_agent"),
        Case("as a service", m, p, js(RECEIPT), 403, role="service"),
    ]  # fmt: skip
    run_table(inv, cases, (staff_twin(m, p, RECEIPT, "/warehouse"),))


ADJUSTMENT = {"warehouse": "AMS", "sku": "SKU-1", "delta": 1, "reason": "found"}


def test_adjustment_bad_input(inv: Client) -> None:
    m, p = "POST", "/v1/adjustments"
    counted = {k: v for k, v in ADJUSTMENT.items() if k != "delta"} | {"counted": 3}
    cases = [
        *envelope(m, p, ADJUSTMENT, inv.settings.max_body_bytes),
        *invalid(m, p, ADJUSTMENT, "/delta", (0, 1.5, "2", True, 2**63, 10**9 + 1, -(10**9) - 1)),
        *invalid(m, p, ADJUSTMENT, "/delta", (None, DELETE), expect="/counted"),  # neither
        *invalid(m, p, ADJUSTMENT, "/counted", (1,)),  # both
        *invalid(m, p, counted, "/counted", (-1, 1.5, "2", True, 2**63, 10**9 + 1)),
        *invalid(m, p, ADJUSTMENT, "/reason", ("theft", "COUNT", "", None, 5, DELETE)),
        *invalid(m, p, ADJUSTMENT, "/note", ("x" * 501, "")),
        *invalid(m, p, ADJUSTMENT, "/location", ("NOPE", "a b")),
        *references(m, p, ADJUSTMENT),
        *invalid(m, p, ADJUSTMENT, "/warehouse", ("AMS",), role="warehouse_staff", warehouses=()),
        Case("below zero on hand", m, p, js({**ADJUSTMENT, "delta": -1, "reason": "loss"}), 409),
        Case("as a support agent", m, p, js(ADJUSTMENT), 403, role="support_agent"),
    ]  # fmt: skip
    run_table(inv, cases, (staff_twin(m, p, ADJUSTMENT, "/warehouse"),))


TRANSFER = {"from_warehouse": "AMS", "to_warehouse": "RTM", "sku": "SKU-1", "quantity": 1}


def test_transfer_bad_input(inv: Client) -> None:
    m, p = "POST", "/v1/transfers"
    staff_both = ("AMS", "RTM")
    cases = [
        *envelope(m, p, TRANSFER, inv.settings.max_body_bytes),
        *invalid(m, p, TRANSFER, "/quantity", (*QUANTITIES, DELETE)),
        *references(m, p, TRANSFER, warehouse="/to_warehouse"),
        *invalid(m, p, TRANSFER, "/from_warehouse", ("ZZZ", "a b", None, DELETE)),
        *invalid(m, p, {**TRANSFER, "from_warehouse": "RTM", "to_warehouse": "AMS"}, "/from_warehouse",
                 ("RTM",), role="warehouse_staff", warehouses=("AMS",)),
        *invalid(m, p, TRANSFER, "/to_warehouse", ("AMS",)),  # to itself
        *invalid(m, p, TRANSFER, "/from_warehouse", ("AMS",), role="warehouse_staff", warehouses=()),
        *invalid(m, p, TRANSFER, "/to_warehouse", ("AMS",), role="warehouse_staff", warehouses=staff_both),
        *invalid(m, p, TRANSFER, "/reference", ("x" * 101,)),
        Case("more than available", m, p, js(TRANSFER), 409),
        Case("as a support agent", m, p, js(TRANSFER), 403, role="support_agent"),
    ]  # fmt: skip
    back = {**TRANSFER, "to_warehouse": "AMS"}
    twins = (staff_twin(m, p, TRANSFER, "/to_warehouse"), staff_twin(m, p, back, "/from_warehouse"))
    run_table(inv, cases, twins)


# --- reservations ---------------------------------------------------------------
RESERVATION = {"warehouse": "AMS", "reference": "SO-1", "lines": [{"sku": "SKU-1", "quantity": 1}]}


def test_reservation_bad_input(inv: Client) -> None:
    receive(inv, "AMS", "SKU-1", 5)
    receive(inv, "AMS", "SKU-2", 5)
    m, p = "POST", "/v1/reservations"
    nested = b"[" * 1000 + b"]" * 1000
    lines = [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 1}]
    many = [{"sku": f"SKU-{i}", "quantity": 1} for i in range(201)]
    no_lines = {"warehouse": "AMS", "reference": "SO-1"}
    cases = [
        *envelope(m, p, RESERVATION, inv.settings.max_body_bytes),
        *invalid(m, p, RESERVATION, "/lines/0/quantity", (*QUANTITIES, DELETE)),
        *invalid(m, p, RESERVATION, "/lines/0/sku", (*BAD_SKUS, "NOPE", DELETE)),
        *invalid(m, p, RESERVATION, "/lines/0/bogus", (1,)),
        *invalid(m, p, RESERVATION, "/lines/0", ("SKU-1", [], None, 1)),
        *invalid(m, p, RESERVATION, "/lines", ([], "SKU-1", lines[0], None, DELETE, many)),
        *invalid(m, p, {**RESERVATION, "lines": lines}, "/lines/1/sku", ("SKU-1",)),  # duplicate
        *invalid(m, p, {**RESERVATION, "lines": lines}, "/lines/1/sku", ("NOPE",)),
        *invalid(m, p, {**RESERVATION, "lines": lines}, "/lines/1/quantity", (0,)),
        Case("1000 levels in lines", m, p, with_raw_field(no_lines, "lines", nested), 422, ("/lines/0",)),
        *invalid(m, p, RESERVATION, "/expires_at", (
            "2000-01-01T00:00:00Z",  # in the past
            "0001-01-01T00:00:00+01:00",
            "2999-01-01T00:00:00",  # no offset
            "tomorrow", "", 1893456000, True,
        )),
        *invalid(m, p, RESERVATION, "/reference", ("x" * 101, "", None, DELETE)),
        *invalid(m, p, RESERVATION, "/warehouse", (*BAD_CODES, None, DELETE, "ZZZ")),
        *invalid(m, p, RESERVATION, "/warehouse", ("RTM",), role="warehouse_staff", warehouses=("AMS",)),
        *invalid(m, p, RESERVATION, "/warehouse", ("ZZZ",), headers=(("Idempotency-Key", "k-unknown"),)),
        Case("more than available", m, p, js(patched(RESERVATION, "/lines/0/quantity", 6)), 409),
        Case("as a support agent", m, p, js(RESERVATION), 403, role="support_agent"),
    ]  # fmt: skip
    run_table(inv, cases, (staff_twin(m, p, RESERVATION, "/warehouse"),))


def reservations_in_rtm(client: Client) -> dict[str, str]:
    """Reservation ids in RTM by state: active, released, consumed."""
    admin = client.as_()
    receive(client, "RTM", "SKU-1", 5)
    body = {"warehouse": "RTM", "reference": "SO-1", "lines": [{"sku": "SKU-1", "quantity": 1}]}
    ids = {
        state: admin.post_json("/v1/reservations", body).json["id"]
        for state in ("active", "released", "consumed")
    }
    admin.post(f"/v1/reservations/{ids['released']}/release", status=200)
    admin.post(f"/v1/reservations/{ids['consumed']}/consume", status=200)
    return ids


def closing(action: str, label: str, rid: str, status: int, suffix: str = "", **kw: Any) -> Case:
    """``POST /v1/reservations/{rid}/{action}``: no body."""
    return Case(
        label, "POST", f"/v1/reservations/{rid}/{action}{suffix}", None, status, content_type=None, **kw
    )


def test_release_and_consume_bad_input(inv: Client) -> None:
    active = reservations_in_rtm(inv)["active"]
    unknown = str(uuid.uuid4())
    staff = {"role": "warehouse_staff", "warehouses": ("AMS",)}
    cases: list[Case] = []
    twins = []
    for action in ("release", "consume"):
        cases += [
            closing(action, "unknown id", unknown, 404),
            closing(action, "id that is no UUID", "not-a-uuid", 404),
            closing(action, "overlong id", "x" * 1000, 404),
            closing(action, "hidden warehouse", active, 404, **staff),
            closing(action, "query parameter", active, 422, "?force=1", pointers=("/force",)),
            closing(action, "as a support agent", active, 403, role="support_agent"),
            *action_envelope("POST", f"/v1/reservations/{active}/{action}", {}, inv.settings.max_body_bytes),
        ]
        if action == "consume":
            # Consuming is all or nothing: lines are not a parameter (they were consumed whole).
            lines = {"lines": [{"sku": "SKU-1", "quantity": 1}]}
            cases.append(Case("consume with lines", "POST", f"/v1/reservations/{active}/consume",
                              js(lines), 422, ("/lines",)))  # fmt: skip
        hidden = closing(action, "hidden", active, 404, **staff)
        twins.append(Twin(hidden, closing(action, "unknown", unknown, 404, **staff), active, unknown))
    run_table(inv, cases, tuple(twins))


# --- the size cap itself ----------------------------------------------------------
def test_body_size_cap_boundary(service_client: Callable[..., Client]) -> None:
    """At the cap the body is read (and judged on its content); one byte over is a 413,
    however the length is conveyed."""
    client = service_client("inventory", "sqlite", max_body_bytes=2048)
    seed(client)
    cap = client.settings.max_body_bytes
    m, p = "POST", "/v1/receipts"

    def sized(n: int) -> bytes:
        stub = js({**RECEIPT, "reference": ""})
        return stub.replace(b'"reference": ""', b'"reference": "' + b"x" * (n - len(stub)) + b'"')

    assert len(sized(cap)) == cap
    at_cap = ("/reference",)  # a 2 KiB reference is over its 100 characters: read, then refused
    cases = [
        Case("at the cap", m, p, sized(cap), 422, at_cap),
        Case("at the cap (chunked)", m, p, sized(cap), 422, at_cap, framing="chunked"),
        Case("one byte over", m, p, sized(cap + 1), 413),
        Case("one byte over (chunked)", m, p, sized(cap + 1), 413, framing="chunked"),
        Case("far over (chunked)", m, p, b"[" * (cap * 50), 413, framing="chunked"),
        Case("over, no Content-Length", m, p, sized(cap + 1), 400, framing="none"),
    ]
    run_table(client, cases)


# --- app bugs: each test below fails until its bug is fixed ---------------------------
def test_closed_reservation_conflict_keeps_the_problem_status(inv: Client) -> None:
    """A 409 on a released/consumed reservation: the problem's ``status`` member must be the
    HTTP status (409), not the reservation's state, which the ``status=`` extension clobbers."""
    ids = reservations_in_rtm(inv)
    cases = [
        closing(action, state, ids[state], 409)
        for action in ("release", "consume")
        for state in ("released", "consumed")
    ]
    run_table(inv, cases)


def test_path_that_is_not_utf8_is_a_404_problem(inv: Client) -> None:
    """``%FF`` in a path segment: a 404 problem, not an exception escaping the app
    (waitress then answers its own text/plain 500)."""
    cases = [
        Case("SKU", "PATCH", "/v1/items/%FF", js({"name": "x"}), 404),
        Case("warehouse", "POST", "/v1/warehouses/%FF/locations", js({"code": "L-1"}), 404),
        closing("release", "reservation", "%FF", 404),
        closing("consume", "reservation", "%FF", 404),
    ]
    run_table(inv, cases)


def test_trailing_newline_is_not_part_of_a_sku_or_code(inv: Client) -> None:
    """``^...$`` lets ``re.match`` accept one trailing ``\\n``: "NEW-2\\n" passes the SKU/code
    patterns and is stored as an identifier."""
    cases = [
        *invalid("POST", "/v1/items", ITEM, "/sku", ("NEW-2\n",)),
        *invalid("POST", "/v1/warehouses", WAREHOUSE, "/code", ("NEW\n",)),
        *invalid("POST", "/v1/warehouses/AMS/locations", {"code": "L-1"}, "/code", ("L-1\n",)),
    ]
    run_table(inv, cases)


def test_nul_character_in_text_is_refused(inv: Client) -> None:
    """PostgreSQL text cannot hold U+0000: the schemas must refuse it (422), not let the
    INSERT fail (500 on PostgreSQL) or store it (SQLite)."""
    receive(inv, "AMS", "SKU-1", 5)
    cases = [
        *invalid("POST", "/v1/items", ITEM, "/name", ("a\x00b",)),
        *invalid("PATCH", "/v1/items/SKU-1", {"name": "x"}, "/name", ("a\x00b",)),
        *invalid("POST", "/v1/warehouses", WAREHOUSE, "/name", ("W\x00",)),
        *invalid("POST", "/v1/warehouses/AMS/locations", {"code": "L-1"}, "/description", ("\x00",)),
        *invalid("POST", "/v1/receipts", RECEIPT, "/reference", ("PO\x00",)),
        *invalid("POST", "/v1/adjustments", ADJUSTMENT, "/note", ("\x00",)),
        *invalid("POST", "/v1/transfers", {**TRANSFER, "to_warehouse": "RTM"}, "/reference", ("\x00",)),
        *invalid("POST", "/v1/reservations", RESERVATION, "/reference", ("SO\x00",)),
    ]
    run_table(inv, cases)


# --- more app bugs: valid input the app cannot carry through ---------------------------
def test_stock_beyond_the_quantity_range_is_not_a_500(inv: Client) -> None:
    """Each request is within the documented 1..1,000,000,000, but on hand would pass
    1,000,000,000, the most a stock event may carry: every write path must refuse it with a
    problem (not a 500 from the outgoing event's validation, and not a 201 that leaves a level
    no later receipt or adjustment can report)."""
    admin = inv.as_()
    receive(inv, "AMS", "SKU-1", 10**9)
    receive(inv, "RTM", "SKU-1", 10**9)
    requests = (
        ("/v1/receipts", {"warehouse": "AMS", "sku": "SKU-1", "quantity": 1}),
        ("/v1/adjustments", {"warehouse": "AMS", "sku": "SKU-1", "delta": 1, "reason": "found"}),
        ("/v1/transfers", {"from_warehouse": "RTM", "to_warehouse": "AMS", "sku": "SKU-1", "quantity": 1}),
    )
    failures = []
    for path, body in requests:
        before = snapshot(inv.engine)
        res = admin.post_json(path, body, expect_errors=True)
        if res.status_int >= 500 or res.content_type != PROBLEM or snapshot(inv.engine) != before:
            failures.append(f"POST {path} {body}: {res.status} {res.text}")
    assert_inventory_invariants(inv.engine)
    assert not failures, "\n".join(failures)


def test_far_future_expiry_is_not_a_500(inv: Client) -> None:
    """9999-12-31T23:59:59-14:00 is a valid aware datetime, but year 10000 in UTC: accept
    it and serve it back, or refuse it with a 422; never a 500."""
    receive(inv, "AMS", "SKU-1", 5)
    admin = inv.as_()
    before = snapshot(inv.engine)
    res = admin.post_json(
        "/v1/reservations", {**RESERVATION, "expires_at": "9999-12-31T23:59:59-14:00"}, expect_errors=True
    )
    assert res.status_int in (201, 422), res.text
    if res.status_int == 422:
        assert res.content_type == PROBLEM
        assert [e["pointer"] for e in res.json["errors"]] == ["/expires_at"]
        assert snapshot(inv.engine) == before
    else:
        assert admin.get(f"/v1/reservations/{res.json['id']}", expect_errors=True).status_int == 200
        assert admin.get("/v1/reservations", expect_errors=True).status_int == 200


def test_expiry_with_an_offset_is_stored_as_that_instant(inv: Client) -> None:
    """05:00+05:00 is 00:00 UTC: the offset must not be dropped (stored as 05:00 UTC)."""
    receive(inv, "AMS", "SKU-1", 5)
    admin = inv.as_()
    day = (datetime.now(UTC) + timedelta(days=30)).date()
    res = admin.post_json("/v1/reservations", {**RESERVATION, "expires_at": f"{day}T05:00:00+05:00"})
    expected = datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert datetime.fromisoformat(res.json["expires_at"]) == expected
    again = admin.get(f"/v1/reservations/{res.json['id']}").json
    assert datetime.fromisoformat(again["expires_at"]) == expected

"""``logistics inventory import items|stock``: the bulk CSV import, through the real CLI.

On PostgreSQL the import is set-based (chunks, COPY); on SQLite it goes row by row. The
tests at the end pin the two paths to the same ledger, events and bad-row report.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from psycopg import errors as pg_errors
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from inventory import cli, importer, models
from inventory.domain import bulk, catalog, reservations, stock
from logistics_shared.cli import main
from logistics_shared.db import make_engine, session_factory
from logistics_shared.identity import Identity, Role
from logistics_shared.outbox import Outbox
from logistics_shared.service import ServiceSpec

from ..conftest import JWT_SECRET, make_settings
from ..helpers.imports import Reservers, assert_same_outputs, deadlocks, new_rows, outputs
from ..invariants import assert_inventory_invariants, outbox_types, row_counts, stock_outbox_types

ADDRESS = {"name": "x", "line1": "y", "city": "z", "country": "NL"}
ITEM_HEADER = "sku,name,unit_weight_g,length_mm,width_mm,height_mm,reorder_point"
ADMIN = Identity(subject="test", role=Role.ADMIN)


class Inventory:
    """A fresh, migrated inventory database and the CLI pointed at it."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.engine = make_engine(make_settings("inventory", url, tmp_path))
        self.factory = session_factory(self.engine)
        self.env = {
            "LOGISTICS_INVENTORY_DATABASE_URL": url,
            "LOGISTICS_JWT_SECRET": JWT_SECRET,
            "LOGISTICS_VAR_DIR": str(tmp_path),
            "COLUMNS": "250",  # keep rich's table from wrapping the messages we look for
        }

    def csv(self, name: str, *lines: str) -> Path:
        path = self.tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner(env={**self.env, **(env or {})})
        return runner.invoke(main, ["inventory", "import", *map(str, args)], catch_exceptions=False)

    def seed_warehouses(self, *codes: str) -> None:
        with self.factory() as session, session.begin():
            for code in codes:
                catalog.create_warehouse(
                    session, {"code": code, "name": f"Warehouse {code}", "address": ADDRESS}
                )

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    def item(self, sku: str) -> Any:
        found = self.rows("SELECT * FROM items WHERE sku = :sku", sku=sku)
        return found[0] if found else None

    def level(self, warehouse: str, sku: str) -> tuple[int, int] | None:
        found = self.rows(
            "SELECT s.on_hand, s.reserved FROM stock_levels s JOIN items i ON i.id = s.item_id "
            "JOIN warehouses w ON w.id = s.warehouse_id WHERE i.sku = :sku AND w.code = :code",
            sku=sku,
            code=warehouse,
        )
        return tuple(found[0]) if found else None

    def movements(self) -> list[tuple[Any, ...]]:
        return [
            tuple(r)
            for r in self.rows(
                "SELECT w.code, i.sku, m.kind, m.quantity, m.reason, m.note, m.actor FROM movements m "
                "JOIN items i ON i.id = m.item_id JOIN warehouses w ON w.id = m.warehouse_id ORDER BY m.id"
            )
        ]


@pytest.fixture
def make_inventory(
    database_factory: Callable[[ServiceSpec, str], str], specs: dict[str, ServiceSpec], tmp_path: Path
) -> Iterator[Callable[[str], Inventory]]:
    made: list[Inventory] = []

    def make(backend: str = "sqlite") -> Inventory:
        inv = Inventory(database_factory(specs["inventory"], backend), tmp_path)
        made.append(inv)
        return inv

    yield make
    for inv in made:
        inv.engine.dispose()


@pytest.fixture
def inv(make_inventory: Callable[[str], Inventory]) -> Inventory:
    return make_inventory("sqlite")


def stocked(inv: Inventory) -> None:
    """Warehouses AMS and RTM, items SKU-1 and SKU-2 (reorder point 3)."""
    inv.seed_warehouses("AMS", "RTM")
    items = inv.csv(
        "seed-items.csv", ITEM_HEADER, "SKU-1,Mug,350,120,90,95,3", "SKU-2,Plate,500,250,250,20,3"
    )
    assert inv.run("items", items).exit_code == 0


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- items ----------------------------------------------------------------------------
def test_items_are_created_then_updated_or_unchanged_on_reimport(inv: Inventory) -> None:
    first = inv.csv(
        "items.csv", ITEM_HEADER, "MUG-01,Coffee mug,350,120,90,95,24", "PLT-01,Plate,500,250,250,20,"
    )
    res = inv.run("items", first)
    assert res.exit_code == 0, res.output
    assert "2 row(s) read: 2 created, 0 updated, 0 unchanged, 0 failed" in res.stdout
    mug = inv.item("MUG-01")
    assert (mug.name, mug.unit_weight_g, mug.length_mm, mug.reorder_point) == ("Coffee mug", 350, 120, 24)
    assert mug.version == 1
    assert inv.item("PLT-01").reorder_point == 0  # empty optional cell: the default

    second = inv.csv(
        "items2.csv", ITEM_HEADER, "MUG-01,Coffee mug XL,400,120,90,95,24", "PLT-01,Plate,500,250,250,20,0"
    )
    res = inv.run("items", second)
    assert res.exit_code == 0, res.output
    assert "2 row(s) read: 0 created, 1 updated, 1 unchanged, 0 failed" in res.stdout
    mug = inv.item("MUG-01")
    assert (mug.name, mug.unit_weight_g, mug.version) == ("Coffee mug XL", 400, 2)
    assert inv.item("PLT-01").version == 1

    # Without the optional column an existing item keeps its reorder point.
    third = inv.csv("items3.csv", ITEM_HEADER.rsplit(",", 1)[0], "MUG-01,Coffee mug XL,400,120,90,95")
    res = inv.run("items", third)
    assert res.exit_code == 0, res.output
    assert "1 unchanged" in res.stdout
    assert inv.item("MUG-01").reorder_point == 24
    # Items travel as item.created / item.updated (shipping's catalogue); unchanged ones emit nothing.
    assert outbox_types(inv.engine) == ["item.created", "item.created", "item.updated"]


def test_items_header_is_case_insensitive_with_bom_and_semicolons(inv: Inventory) -> None:
    path = inv.tmp_path / "excel.csv"
    lines = ["SKU;Name;Unit_Weight_g;Length_mm;Width_mm;Height_mm", "MUG-01;Mug, large;350;120;90;95"]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    res = inv.run("items", path)
    assert res.exit_code == 0, res.output
    assert inv.item("MUG-01").name == "Mug, large"


def test_bad_item_rows_are_reported_and_good_rows_kept(inv: Inventory) -> None:
    path = inv.csv(
        "items.csv",
        ITEM_HEADER,
        "GOOD-1,Good one,100,10,10,10,1",
        "INT-1,Bad weight,12.5,10,10,10,1",  # line 3
        "XTRA-1,Extra value,100,10,10,10,1,surprise",  # line 4
        f"LONG-1,{'n' * 201},100,10,10,10,1",  # line 5
        "BAD SKU!,Bad sku,100,10,10,10,1",  # line 6
        "",  # blank lines are skipped, but still counted as lines
        "GOOD-2,Good two,200,20,20,20,",  # line 8
        "NEG-1,Negative,-5,10,abc,,1",  # line 9
    )
    errors = inv.tmp_path / "errors.csv"
    res = inv.run("items", path, "--errors-csv", errors)
    assert res.exit_code == 1, res.output
    assert "7 row(s) read: 2 created, 0 updated, 0 unchanged, 5 failed" in res.stdout
    assert inv.item("GOOD-1") is not None and inv.item("GOOD-2") is not None
    assert {r.sku for r in inv.rows("SELECT sku FROM items")} == {"GOOD-1", "GOOD-2"}

    report = read_csv(errors)
    assert [r["sku"] for r in report] == ["INT-1", "XTRA-1", "LONG-1", "BAD SKU!", "NEG-1"]
    assert list(report[0]) == [*ITEM_HEADER.split(","), "error"]
    by_sku = {r["sku"]: r["error"] for r in report}
    assert by_sku["INT-1"] == "line 3: unit_weight_g: Not a whole number: '12.5'."
    assert by_sku["XTRA-1"].startswith("line 4: 1 more value(s) than the header has columns")
    assert by_sku["LONG-1"].startswith("line 5: name: Length must be between 1 and 200")
    assert by_sku["BAD SKU!"].startswith("line 6: sku: A SKU is 1-64 letters")
    assert by_sku["NEG-1"].startswith("line 9: unit_weight_g: Must be greater than or equal to 0")
    assert "width_mm: Not a whole number: 'abc'" in by_sku["NEG-1"]
    assert "height_mm: A value is required" in by_sku["NEG-1"]
    assert report[0]["unit_weight_g"] == "12.5"  # the cells as they were, to fix in place

    table = res.stdout
    assert "Rows not imported" in table
    for line, sku in ((3, "INT-1"), (4, "XTRA-1"), (5, "LONG-1"), (6, "BAD SKU!"), (9, "NEG-1")):
        assert any(f" {line} " in row and sku in row for row in table.splitlines()), (line, sku)

    # Fix the errors file in place (its `error` column is ignored) and import it again.
    fixed = inv.tmp_path / "fixed.csv"
    rows = read_csv(errors)
    rows[0]["unit_weight_g"] = "12"
    rows[2]["name"] = "Long"
    rows[3]["sku"] = "BAD-SKU"
    rows[4].update(unit_weight_g="5", width_mm="10", height_mm="10")
    with fixed.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["sku"] != "XTRA-1")
    res = inv.run("items", fixed)
    assert res.exit_code == 0, res.output
    assert "4 created" in res.stdout
    assert inv.item("INT-1").unit_weight_g == 12


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("sku,name,unit_weight_g,length_mm,width_mm", "missing required column(s): height_mm"),
        (ITEM_HEADER + ",colour", "unknown column(s): colour"),
        ("sku,nmae,unit_weight_g,length_mm,width_mm,height_mm", "missing required column(s): name"),
    ],
)
def test_bad_header_is_exit_2_and_applies_nothing(inv: Inventory, header: str, message: str) -> None:
    path = inv.csv("items.csv", header, "MUG-01,Mug,1,1,1,1,1")
    res = inv.run("items", path)
    assert res.exit_code == 2
    assert message in res.stderr
    assert "expected columns: sku, name" in res.stderr
    assert row_counts(inv.engine)["items"] == 0


def test_empty_file_and_missing_file_are_usage_errors(inv: Inventory) -> None:
    res = inv.run("items", inv.csv("empty.csv", ""))
    assert res.exit_code == 2
    assert "empty" in res.stderr
    res = inv.run("stock", inv.tmp_path / "nope.csv")
    assert res.exit_code == 2


def test_help_explains_the_columns(inv: Inventory) -> None:
    items_help = inv.run("items", "--help").stdout
    for column in ITEM_HEADER.split(","):
        assert column in items_help
    stock_help = inv.run("stock", "--help").stdout
    for column in ("warehouse", "sku", "counted", "reason", "note", "damage"):
        assert column in stock_help


# --- stock ----------------------------------------------------------------------------
def test_stock_import_writes_adjustments_levels_and_events(inv: Inventory) -> None:
    stocked(inv)
    path = inv.csv(
        "count.csv",
        "warehouse,sku,counted,reason,note",
        "AMS,SKU-1,10,,",
        'RTM,SKU-1,4,found,"pallet behind dock 2, wrapped"',
        "AMS,SKU-2,0,,",  # nothing there, nothing counted: no change
    )
    res = inv.run("stock", path, "--actor", "alice")
    assert res.exit_code == 0, res.output
    assert "3 row(s) read: 2 adjusted, 1 no change, 0 failed" in res.stdout
    assert inv.level("AMS", "SKU-1") == (10, 0)
    assert inv.level("RTM", "SKU-1") == (4, 0)
    assert inv.movements() == [
        ("AMS", "SKU-1", "adjustment", 10, "count", None, "admin:alice"),
        ("RTM", "SKU-1", "adjustment", 4, "found", "pallet behind dock 2, wrapped", "admin:alice"),
    ]
    assert stock_outbox_types(inv.engine) == ["stock.adjusted", "stock.adjusted"]
    payload = orjson.loads(
        inv.rows("SELECT payload FROM outbox WHERE event_type LIKE 'stock.%' ORDER BY id")[1].payload
    )
    assert payload["type"] == "stock.adjusted"
    assert payload["data"]["delta"] == 4 and payload["data"]["reason"] == "found"
    assert payload["data"]["on_hand"] == 4 and payload["data"]["warehouse"] == "RTM"

    # A recount: the difference goes to the ledger; crossing the reorder point says so.
    res = inv.run("stock", inv.csv("recount.csv", "warehouse,sku,counted,reason", "AMS,SKU-1,2,damage"))
    assert res.exit_code == 0, res.output
    assert inv.level("AMS", "SKU-1") == (2, 0)
    assert inv.movements()[-1][:5] == ("AMS", "SKU-1", "adjustment", -8, "damage")
    assert inv.movements()[-1][6].startswith("admin:import:")  # the default actor
    assert stock_outbox_types(inv.engine)[-2:] == ["stock.adjusted", "stock.low"]

    # The same file again: all counts match, nothing changes.
    res = inv.run("stock", path)
    assert res.exit_code == 0
    res = inv.run("stock", path)
    assert "0 adjusted, 3 no change" in res.stdout
    assert_inventory_invariants(inv.engine)


def test_stock_row_errors(inv: Inventory) -> None:
    stocked(inv)
    assert inv.run("stock", inv.csv("count.csv", "warehouse,sku,counted", "AMS,SKU-1,10")).exit_code == 0
    with inv.factory() as session, session.begin():
        outbox = Outbox(session, models.outbox, producer="inventory")
        reservations.reserve(
            session,
            outbox,
            ADMIN,
            {
                "warehouse": "AMS",
                "reference": "S-1",
                "lines": [{"sku": "SKU-1", "quantity": 6}],
                "expires_at": None,
            },
        )
    path = inv.csv(
        "count.csv",
        "warehouse,sku,counted,reason",
        "AMS,SKU-1,5,",  # line 2: below the 6 reserved
        "XXX,SKU-1,5,",  # line 3: unknown warehouse
        "AMS,NOPE-1,5,",  # line 4: unknown SKU
        "AMS,SKU-2,5,stolen",  # line 5: not a reason
        "AMS,SKU-2,-1,",  # line 6: negative
        "AMS,SKU-2,lots,",  # line 7: not a number
        "AMS,SKU-2,,",  # line 8: missing
        "RTM,SKU-2,7,",  # line 9: fine
    )
    errors = inv.tmp_path / "errors.csv"
    res = inv.run("stock", path, "--errors-csv", errors)
    assert res.exit_code == 1, res.output
    assert "8 row(s) read: 1 adjusted, 0 no change, 7 failed" in res.stdout
    report = {r["error"].split(":", 1)[0]: r["error"].split(": ", 1)[1] for r in read_csv(errors)}
    assert report["line 2"] == "Counted 5 is below the 6 units reserved; release reservations first."
    assert report["line 3"] == "warehouse: Unknown warehouse 'XXX'."
    assert report["line 4"] == "sku: Unknown SKU 'NOPE-1'."
    assert report["line 5"].startswith("reason: Must be one of: count, damage")
    assert report["line 6"].startswith("counted: Must be greater than or equal to 0")
    assert report["line 7"] == "counted: Not a whole number: 'lots'."
    assert report["line 8"] == "counted: A value is required."
    assert "Line" in res.stdout and "Warehouse" in res.stdout and "Unknown warehouse 'XXX'" in res.stdout
    assert inv.level("AMS", "SKU-1") == (10, 6)
    assert inv.level("RTM", "SKU-2") == (7, 0)
    assert_inventory_invariants(inv.engine)


def test_dry_run_changes_nothing(inv: Inventory) -> None:
    stocked(inv)
    before = row_counts(inv.engine)
    items = inv.csv(
        "items.csv", ITEM_HEADER, "NEW-1,New,1,1,1,1,0", "SKU-1,Renamed,350,120,90,95,3", "BAD,x,y,1,1,1,"
    )
    res = inv.run("items", items, "--dry-run")
    assert res.exit_code == 1
    assert (
        "Dry run, nothing saved. items: 3 row(s) read: 1 created, 1 updated, 0 unchanged, 1 failed"
        in res.stdout
    )
    count = inv.csv("count.csv", "warehouse,sku,counted", "AMS,SKU-1,10", "RTM,SKU-2,3")
    res = inv.run("stock", count, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "2 adjusted" in res.stdout
    assert row_counts(inv.engine) == before
    assert inv.item("SKU-1").name == "Mug"
    assert inv.item("NEW-1") is None
    assert_inventory_invariants(inv.engine)


# --- the database going away --------------------------------------------------------
def test_unreachable_or_unmigrated_database_stops_before_any_row(inv: Inventory) -> None:
    path = inv.csv("items.csv", ITEM_HEADER, "MUG-01,Mug,1,1,1,1,1")
    res = inv.run(
        "items",
        path,
        env={"LOGISTICS_INVENTORY_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"},
    )
    assert res.exit_code == 3
    assert "cannot use the inventory database" in res.stderr
    res = inv.run(
        "items", path, env={"LOGISTICS_INVENTORY_DATABASE_URL": f"sqlite:///{inv.tmp_path / 'blank.db'}"}
    )
    assert res.exit_code == 3
    assert "logistics migrate inventory" in res.stderr


def test_database_lost_mid_import_stops_without_blaming_rows(
    inv: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = catalog.upsert_item, []

    def flaky(session: Any, data: dict[str, Any], outbox: Any = None) -> str:
        calls.append(data["sku"])
        if len(calls) == 2:
            raise OperationalError(
                "UPDATE items ...", {}, Exception("server closed the connection unexpectedly")
            )
        return real(session, data, outbox)

    monkeypatch.setattr(catalog, "upsert_item", flaky)
    path = inv.csv("items.csv", ITEM_HEADER, "A-1,A,1,1,1,1,1", "B-1,B,1,1,1,1,1", "C-1,C,1,1,1,1,1")
    errors = inv.tmp_path / "errors.csv"
    res = inv.run("items", path, "--errors-csv", errors)
    assert res.exit_code == 3
    assert "Stopped at line 3" in res.stderr
    assert "server closed the connection unexpectedly" in res.stderr
    assert "1 row(s) read: 1 created, 0 updated, 0 unchanged, 0 failed" in res.stdout
    assert read_csv(errors) == []
    assert calls == ["A-1", "B-1"]
    assert [r.sku for r in inv.rows("SELECT sku FROM items")] == ["A-1"]


# --- PostgreSQL -------------------------------------------------------------------------
@pytest.mark.postgres
def test_items_and_stock_import_on_postgres(make_inventory: Callable[[str], Inventory]) -> None:
    inv = make_inventory("postgres")
    stocked(inv)
    path = inv.csv(
        "count.csv",
        "warehouse,sku,counted,note",
        "AMS,SKU-1,10,",
        "AMS,SKU-2,3,shelf B",
        f"AMS,SKU-2,3,{'x' * 501}",  # too long a note: the schema stops it before the database does
        "AMS,SKU-1,-1,",
    )
    res = inv.run("stock", path, "--actor", "bob")
    assert res.exit_code == 1, res.output
    assert "4 row(s) read: 2 adjusted, 0 no change, 2 failed" in res.stdout
    assert inv.level("AMS", "SKU-1") == (10, 0)
    assert inv.level("AMS", "SKU-2") == (3, 0)
    assert [m[3] for m in inv.movements()] == [10, 3]
    assert stock_outbox_types(inv.engine) == ["stock.adjusted", "stock.adjusted"]
    res = inv.run("stock", path, "--dry-run")
    assert "0 adjusted, 2 no change, 2 failed" in res.stdout
    assert_inventory_invariants(inv.engine)


# --- on both databases: repeated keys, chunks, progress without a terminal ----------------
@pytest.fixture(params=["sqlite", "postgres"])
def either(request: pytest.FixtureRequest, make_inventory: Callable[[str], Inventory]) -> Inventory:
    return make_inventory(request.param)


def test_a_repeated_sku_is_a_row_error_not_an_overwrite(either: Inventory) -> None:
    inv = either
    path = inv.csv(
        "items.csv",
        ITEM_HEADER,
        "MUG-01,Mug,350,120,90,95,24",
        "PLT-01,Plate,500,250,250,20,",
        "MUG-01,Mug (second),999,120,90,95,24",  # line 4: MUG-01 again
        "BAD-1,Bad,x,1,1,1,",  # line 5: invalid, so it claims nothing
        "BAD-1,Bad fixed,1,1,1,1,",  # line 6: the first valid BAD-1
        "MUG-01,Mug (third),999,120,90,95,24",  # line 7: again, in another chunk
    )
    errors = inv.tmp_path / "errors.csv"
    res = inv.run("items", path, "--chunk-size", "2", "--errors-csv", errors)
    assert res.exit_code == 1, res.output
    assert "6 row(s) read: 3 created, 0 updated, 0 unchanged, 3 failed" in res.stdout
    mug = inv.item("MUG-01")
    assert (mug.name, mug.unit_weight_g, mug.version) == ("Mug", 350, 1)
    assert inv.item("BAD-1").name == "Bad fixed"
    again = "sku: SKU 'MUG-01' is already on line 2; a file may name each SKU once."
    assert [r["error"] for r in read_csv(errors)] == [
        f"line 4: {again}",
        "line 5: unit_weight_g: Not a whole number: 'x'.",
        f"line 7: {again}",
    ]

    # Counted stock: once per warehouse and SKU; the same SKU elsewhere is another level.
    inv.seed_warehouses("AMS", "RTM")
    count = inv.csv(
        "count.csv", "warehouse,sku,counted", "AMS,MUG-01,5", "RTM,MUG-01,6", "AMS,MUG-01,7", "AMS,PLT-01,1"
    )
    res = inv.run("stock", count, "--chunk-size", "2", "--errors-csv", errors)
    assert res.exit_code == 1, res.output
    assert "4 row(s) read: 3 adjusted, 0 no change, 1 failed" in res.stdout
    assert (inv.level("AMS", "MUG-01"), inv.level("RTM", "MUG-01")) == ((5, 0), (6, 0))
    assert [r["error"] for r in read_csv(errors)] == [
        "line 4: sku: SKU 'MUG-01' in warehouse 'AMS' is already on line 2; "
        "a file may count each SKU once per warehouse."
    ]
    assert stock_outbox_types(inv.engine) == ["stock.adjusted"] * 3
    assert_inventory_invariants(inv.engine)


def test_without_a_terminal_progress_goes_to_stderr_as_lines(either: Inventory) -> None:
    inv = either
    rows = [f"P-{n},Item {n},1,1,1,1," for n in range(5)]
    path = inv.csv("items.csv", ITEM_HEADER, *rows[:3], "BAD,x,y,1,1,1,", *rows[3:])
    res = inv.run("items", path, "--progress-interval", "0", "--chunk-size", "2")
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()
    assert lines[0] == f"Importing items from {path}: 6 row(s)"
    assert lines[1].startswith("Importing items: 1/6 rows (16%), 0 failed, ")
    assert lines[4].startswith("Importing items: 4/6 rows (66%), 1 failed, ")
    assert lines[6].startswith("Importing items: 6/6 rows (100%), 1 failed, ") and "left" in lines[6]
    assert lines[7].startswith("Importing items: 6/6 rows (100%), 1 failed, ") and "done in" in lines[7]
    assert len(lines) == 8
    assert "rows (" not in res.stdout  # stdout keeps the summary and the table alone

    # At the default interval a file this short gets its first and last line only.
    res = inv.run("stock", inv.csv("count.csv", "warehouse,sku,counted,reason"), "--dry-run")
    assert res.stderr.splitlines()[0].startswith("Checking stock from ")
    assert res.stderr.splitlines()[1].startswith("Checking stock: 0/0 rows (100%), 0 failed, ")
    assert len(res.stderr.splitlines()) == 2
    assert inv.run("items", path, "--no-progress").stderr == ""


def test_progress_lines_come_at_the_interval(capsys: pytest.CaptureFixture[str]) -> None:
    now = [100.0]
    lines = cli.ProgressLines("Importing stock", 10, 5.0, clock=lambda: now[0])
    for step in range(10):
        now[0] += 1.0
        lines.advance(None if step == 3 else "adjusted")
    lines.finish()
    assert capsys.readouterr().err.splitlines() == [
        "Importing stock: 5/10 rows (50%), 1 failed, 1 rows/s, about 5 s left",
        "Importing stock: 10/10 rows (100%), 1 failed, 1 rows/s, about 0 s left",
        "Importing stock: 10/10 rows (100%), 1 failed, 1 rows/s, done in 10.0 s",
    ]


def test_chunk_size_is_bounded(inv: Inventory) -> None:
    # The CLI repeats the importer's bounds so that --help stays light.
    assert (cli.DEFAULT_CHUNK_SIZE, cli.MAX_CHUNK_SIZE) == (
        importer.DEFAULT_CHUNK_SIZE,
        importer.MAX_CHUNK_SIZE,
    )
    path = inv.csv("items.csv", ITEM_HEADER, "A-1,A,1,1,1,1,1")
    for bad in ("0", str(importer.MAX_CHUNK_SIZE + 1), "many"):
        res = inv.run("items", path, "--chunk-size", bad)
        assert res.exit_code == 2, bad
        assert "--chunk-size" in res.stderr
    assert row_counts(inv.engine)["items"] == 0
    assert "--chunk-size" in inv.run("items", "--help").stdout


# --- PostgreSQL: set-based chunks ---------------------------------------------------------
MIXED_ITEMS = (
    ITEM_HEADER,
    "NEW-1,New one,100,10,10,10,4",
    "SKU-1,Item 1 renamed,100,10,10,10,3",  # updated: the name
    "SKU-2,Item 2,200,10,10,10,3",  # unchanged
    "SKU-3,Item 3,300,10,10,10,",  # no reorder point: keeps its 5, so unchanged
    "SKU-4,Item 4,400,11,10,10,",  # updated: the length; keeps its reorder point
    "NEW-2,New two,1,1,1,1,",  # created with reorder point 0
    "NEW-1,New one again,100,10,10,10,4",  # repeated
    "BAD-1,Bad weight,12.5,10,10,10,1",
    "XTRA-1,Extra value,100,10,10,10,1,surprise",
    "",
    f"LONG-1,{'n' * 201},100,10,10,10,1",
    "BAD SKU!,Bad sku,100,10,10,10,1",
    "SKU-6,Item 6,600,10,10,10,9",  # updated: the reorder point
    "NEW-3,New three,3,3,3,3,1",
)
MIXED_STOCK = (
    "warehouse,sku,counted,reason,note",
    "AMS,SKU-1,25,,",  # up by 15
    "AMS,SKU-2,1,damage,broken in aisle 3",  # down by 9, below its reorder point: stock.low
    "AMS,SKU-3,4,,",  # as on hand: no change
    'RTM,SKU-1,5,found,"behind dock 2, wrapped"',  # a new level
    "RTM,SKU-4,0,,",  # a new level at zero: no change
    "AMS,SKU-5,5,,",  # below the 6 reserved
    "XXX,SKU-1,5,,",  # unknown warehouse
    "AMS,NOPE-1,5,,",  # unknown SKU
    "XXX,NOPE-1,5,,",  # both: the warehouse is named first, as the API does
    "AMS,SKU-6,-1,,",
    "AMS,SKU-6,lots,,",
    "AMS,SKU-1,30,,",  # repeated
    "AMS,SKU-6,7,stolen,",  # not a reason
    "AMS,SKU-6,7,,",  # the first valid row for it: a new level
    "AMS,SKU-5,8,correction,",  # repeated, though the first one failed
    "AMS,SKU-3,1,loss,",  # repeated
    "RTM,SKU-3,2,,",
    "AMS,SKU-4,3,,",
)


def seed_for_comparison(inv: Inventory) -> None:
    """Two warehouses, six items, stock in AMS and a reservation: the same in every database."""
    inv.seed_warehouses("AMS", "RTM")
    with inv.factory() as session, session.begin():
        outbox = Outbox(session, models.outbox, producer="inventory")
        for n, reorder_point in enumerate((3, 3, 5, 2, 0, 0), 1):
            catalog.create_item(
                session,
                {
                    "sku": f"SKU-{n}",
                    "name": f"Item {n}",
                    "unit_weight_g": 100 * n,
                    "length_mm": 10,
                    "width_mm": 10,
                    "height_mm": 10,
                    "reorder_point": reorder_point,
                },
            )
        for sku, quantity in (("SKU-1", 10), ("SKU-2", 10), ("SKU-3", 4), ("SKU-5", 9)):
            stock.receive(
                session,
                outbox,
                ADMIN,
                {"warehouse": "AMS", "sku": sku, "quantity": quantity, "location": None, "reference": None},
            )
        reservations.reserve(
            session,
            outbox,
            ADMIN,
            {
                "warehouse": "AMS",
                "reference": "S-1",
                "lines": [{"sku": "SKU-5", "quantity": 6}],
                "expires_at": None,
            },
        )


@pytest.mark.postgres
def test_set_based_and_row_by_row_leave_the_same_ledger_events_and_report(
    make_inventory: Callable[[str], Inventory], tmp_path: Path
) -> None:
    by_row, set_based = make_inventory("postgres"), make_inventory("postgres")
    for inv in (by_row, set_based):
        seed_for_comparison(inv)
    seeded = outputs(by_row.engine)
    actor = Identity(subject="alice", role=Role.ADMIN)
    expected = {
        "items": {"created": 3, "updated": 3, "unchanged": 2},
        "stock": {"adjusted": 6, "unchanged": 2},
    }
    for kind, lines in (("items", MIXED_ITEMS), ("stock", MIXED_STOCK)):
        source = importer.open_source(by_row.csv(f"{kind}.csv", *lines), importer.KINDS[kind])
        untouched = [outputs(inv.engine) for inv in (by_row, set_based)]
        for dry_run in (True, False):
            reports = []
            for inv, flag in ((by_row, False), (set_based, True)):
                seen: list[tuple[int, str | None]] = []
                result = importer.run_import(
                    source,
                    inv.factory,
                    actor,
                    dry_run=dry_run,
                    chunk_size=4,  # chunk boundaries inside the file
                    set_based=flag,
                    on_row=lambda line, outcome, seen=seen: seen.append((line, outcome)),
                )
                errors = tmp_path / f"{kind}-{flag}-{dry_run}-errors.csv"
                importer.write_errors_csv(result, source, errors)
                reports.append((result, seen, errors.read_text()))
            (row_result, row_seen, row_csv), (set_result, set_seen, set_csv) = reports
            assert dict(row_result.counts) == expected[kind], (kind, dry_run)
            assert (set_result.rows_read, dict(set_result.counts)) == (
                row_result.rows_read,
                row_result.counts,
            )
            assert (set_result.stopped, set_result.dry_run) == (None, dry_run)
            assert set_seen == row_seen
            for row_failure, set_failure in zip(row_result.failures, set_result.failures, strict=True):
                assert set_failure == row_failure
            assert set_csv == row_csv
            if dry_run:  # nothing written, on either path
                assert [outputs(inv.engine) for inv in (by_row, set_based)] == untouched

    after = [new_rows(outputs(inv.engine), seeded) for inv in (by_row, set_based)]
    assert_same_outputs(*after)
    types = [event[0] for event in after[0]["events"] if event[0].startswith("stock.")]
    assert types == ["stock.adjusted", "stock.adjusted", "stock.low", *["stock.adjusted"] * 4]
    # The items file's new and changed items, as item.* events, the same on both paths.
    assert {event[0] for event in after[0]["events"]} - set(types) == {"item.created", "item.updated"}
    for inv in (by_row, set_based):
        assert_inventory_invariants(inv.engine)


def _replace_kind(monkeypatch: pytest.MonkeyPatch, name: str, apply_chunk: Callable[..., Any]) -> None:
    """What the CLI imports with: ``name``'s kind with another set-based step."""
    monkeypatch.setitem(
        importer.KINDS, name, dataclasses.replace(importer.KINDS[name], apply_chunk=apply_chunk)
    )


@pytest.mark.postgres
def test_database_lost_mid_import_on_postgres_stops_at_the_chunk(
    make_inventory: Callable[[str], Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = make_inventory("postgres")
    calls: list[list[int]] = []

    def flaky(session: Any, actor: Identity, rows: Any) -> Any:
        calls.append([line for line, _data, _given in rows])
        if len(calls) == 2:
            raise OperationalError("COPY import_items ...", {}, Exception("server closed the connection"))
        return bulk.upsert_items(session, actor, rows)

    _replace_kind(monkeypatch, "items", flaky)
    path = inv.csv(
        "items.csv",
        ITEM_HEADER,
        "A-1,A,1,1,1,1,1",
        "BAD,x,y,1,1,1,1",
        "B-1,B,1,1,1,1,1",
        "C-1,C,1,1,1,1,1",
        "D-1,D,1,1,1,1,1",
    )
    errors = inv.tmp_path / "errors.csv"
    res = inv.run("items", path, "--chunk-size", "2", "--errors-csv", errors)
    assert res.exit_code == 3, res.output
    assert "Stopped at line 4: the database stopped answering: server closed the connection" in res.stderr
    assert "2 row(s) read: 1 created, 0 updated, 0 unchanged, 1 failed" in res.stdout
    assert [r["sku"] for r in read_csv(errors)] == ["BAD"]  # the chunk that stopped reports nothing
    assert calls == [[2], [4, 5]]
    assert [r.sku for r in inv.rows("SELECT sku FROM items")] == ["A-1"]


@pytest.mark.postgres
def test_a_chunk_the_database_refuses_is_applied_again_row_by_row(
    make_inventory: Callable[[str], Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = make_inventory("postgres")
    stocked(inv)

    def refused(session: Any, actor: Identity, rows: Any) -> Any:
        bulk.apply_counts(session, actor, rows)
        raise IntegrityError("INSERT INTO movements ...", {}, Exception("a check the schemas missed"))

    _replace_kind(monkeypatch, "stock", refused)
    path = inv.csv("count.csv", "warehouse,sku,counted", "AMS,SKU-1,10", "AMS,NOPE-1,1", "RTM,SKU-2,4")
    res = inv.run("stock", path)
    assert res.exit_code == 1, res.output
    assert "3 row(s) read: 2 adjusted, 0 no change, 1 failed" in res.stdout
    assert "Unknown SKU 'NOPE-1'" in res.stdout
    assert [m[3] for m in inv.movements()] == [10, 4]  # once each: the chunk's own writes rolled back
    assert stock_outbox_types(inv.engine) == ["stock.adjusted", "stock.adjusted"]
    assert_inventory_invariants(inv.engine)


@pytest.mark.postgres
def test_a_deadlocked_chunk_runs_again(
    make_inventory: Callable[[str], Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = make_inventory("postgres")
    stocked(inv)
    attempts: list[int] = []

    def deadlocked_once(session: Any, actor: Identity, rows: Any) -> Any:
        attempts.append(len(rows))
        outcomes = bulk.apply_counts(session, actor, rows)
        if len(attempts) == 1:
            raise OperationalError("SELECT ... FOR UPDATE", {}, pg_errors.DeadlockDetected("deadlock"))
        return outcomes

    _replace_kind(monkeypatch, "stock", deadlocked_once)
    res = inv.run("stock", inv.csv("count.csv", "warehouse,sku,counted", "AMS,SKU-1,10", "RTM,SKU-2,4"))
    assert res.exit_code == 0, res.output
    assert attempts == [2, 2]
    assert [m[3] for m in inv.movements()] == [10, 4]
    assert stock_outbox_types(inv.engine) == ["stock.adjusted", "stock.adjusted"]


@pytest.mark.postgres
def test_an_import_racing_reservations_on_the_same_levels_deadlocks_nothing(
    make_inventory: Callable[[str], Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = make_inventory("postgres")
    inv.seed_warehouses("AMS")
    skus = [f"C-{n:03d}" for n in range(60)]
    with inv.factory() as session, session.begin():
        outbox = Outbox(session, models.outbox, producer="inventory")
        for sku in skus:
            catalog.create_item(
                session,
                {
                    "sku": sku,
                    "name": sku,
                    "unit_weight_g": 1,
                    "length_mm": 1,
                    "width_mm": 1,
                    "height_mm": 1,
                    "reorder_point": 5,
                },
            )
        # Levels made in reverse: their ids run against the item ids, so locking a chunk's
        # levels by id would take them in the opposite order to a reservation's.
        for sku in reversed(skus):
            stock.receive(
                session,
                outbox,
                ADMIN,
                {"warehouse": "AMS", "sku": sku, "quantity": 40, "location": None, "reference": None},
            )
    # Any lock wait that ends in a deadlock surfaces here, even one a retry would hide.
    import_errors: list[BaseException] = []

    def watched(session: Any, actor: Identity, rows: Any) -> Any:
        try:
            return bulk.apply_counts(session, actor, rows)
        except OperationalError as exc:
            import_errors.append(exc)
            raise

    _replace_kind(monkeypatch, "stock", watched)
    replanned: list[str] = []

    def count_replans(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("ROLLBACK TO SAVEPOINT"):
            replanned.append(statement)

    event.listen(inv.engine, "before_cursor_execute", count_replans)
    results = []
    with Reservers(inv.factory, ADMIN, "AMS", skus, threads=4) as reservers:
        for round_ in range(12):
            # Plenty in most rows, and now and then a count below what is reserved.
            counts = [(sku, 2 if (n + round_) % 5 == 0 else 30 + round_) for n, sku in enumerate(skus)]
            path = inv.csv(
                f"count-{round_}.csv", "warehouse,sku,counted", *(f"AMS,{sku},{c}" for sku, c in counts)
            )
            source = importer.open_source(path, importer.KINDS["stock"])
            results.append(importer.run_import(source, inv.factory, ADMIN, chunk_size=7, set_based=True))
    event.remove(inv.engine, "before_cursor_execute", count_replans)
    print(f"chunks planned again: {len(replanned)}")
    assert import_errors == []
    assert reservers.errors == []
    assert reservers.counts["reserved"] > 20, reservers.counts
    for result in results:
        assert result.stopped is None
        assert result.rows_read == len(skus)
        for failure in result.failures:
            assert "units reserved; release reservations first" in failure.error, failure
    inv.engine.dispose()
    assert deadlocks(inv.engine) == 0
    assert_inventory_invariants(inv.engine)
    adjusted = sum(result.counts["adjusted"] for result in results)
    (movements,) = inv.rows(
        "SELECT count(*) FROM movements WHERE kind = 'adjustment' AND actor = 'admin:test'"
    )
    (events,) = inv.rows("SELECT count(*) FROM outbox WHERE event_type = 'stock.adjusted'")
    assert (movements[0], events[0]) == (adjusted, adjusted)


@pytest.mark.postgres
def test_a_level_reserved_between_the_plan_and_the_lock_is_planned_again(
    make_inventory: Callable[[str], Inventory],
) -> None:
    inv = make_inventory("postgres")
    stocked(inv)
    count = inv.csv("count.csv", "warehouse,sku,counted", "AMS,SKU-1,10", "AMS,SKU-2,10")
    assert inv.run("stock", count).exit_code == 0
    reserved_meanwhile: list[str] = []

    def reserve_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Just before the import locks its levels, a reservation commits on two of them.
        if "FOR UPDATE OF l" in statement and not reserved_meanwhile:
            reserved_meanwhile.append("S-9")
            with inv.factory() as session, session.begin():
                outbox = Outbox(session, models.outbox, producer="inventory")
                lines = [{"sku": "SKU-1", "quantity": 6}, {"sku": "SKU-2", "quantity": 2}]
                data = {"warehouse": "AMS", "reference": "S-9", "lines": lines, "expires_at": None}
                reservations.reserve(session, outbox, ADMIN, data)

    event.listen(inv.engine, "before_cursor_execute", reserve_first)
    before = len(stock_outbox_types(inv.engine))
    recount = inv.csv("recount.csv", "warehouse,sku,counted", "AMS,SKU-1,5", "AMS,SKU-2,4")
    refused: list[Exception] = []

    def watched(session: Any, actor: Identity, rows: Any) -> Any:
        try:
            return bulk.apply_counts(session, actor, rows)
        except IntegrityError as exc:
            refused.append(exc)
            raise

    kind = dataclasses.replace(importer.KINDS["stock"], apply_chunk=watched)
    try:
        result = importer.run_import(importer.open_source(recount, kind), inv.factory, ADMIN, set_based=True)
    finally:
        event.remove(inv.engine, "before_cursor_execute", reserve_first)
    assert reserved_meanwhile == ["S-9"]
    assert refused == []  # planned again, not written stale and refused by the CHECK
    # Planned on 0 reserved, SKU-1 would have gone to 5; with 6 reserved it is refused.
    assert dict(result.counts) == {"adjusted": 1}
    assert [(f.line, f.error) for f in result.failures] == [
        (2, "Counted 5 is below the 6 units reserved; release reservations first.")
    ]
    assert (inv.level("AMS", "SKU-1"), inv.level("AMS", "SKU-2")) == ((10, 6), (4, 2))
    # SKU-2's events carry the figures after the reservation: and only they cross the reorder point.
    payloads = [orjson.loads(r.payload) for r in inv.rows("SELECT payload FROM outbox ORDER BY id")]
    mine = [(p["type"], p["data"].get("reserved"), p["data"].get("available")) for p in payloads[before:]]
    assert mine[-2:] == [("stock.adjusted", 2, 2), ("stock.low", 2, 2)]
    assert inv.movements()[-1][:4] == ("AMS", "SKU-2", "adjustment", -6)
    assert_inventory_invariants(inv.engine)

"""``logistics inventory import items|stock``: the bulk CSV import, through the real CLI."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from inventory import models
from inventory.domain import catalog, reservations
from logistics_shared.cli import main
from logistics_shared.db import make_engine, session_factory
from logistics_shared.identity import Identity, Role
from logistics_shared.outbox import Outbox
from logistics_shared.service import ServiceSpec

from ..conftest import JWT_SECRET, make_settings
from ..invariants import assert_inventory_invariants, outbox_types, row_counts

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
    assert row_counts(inv.engine)["outbox"] == 0


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
    assert outbox_types(inv.engine) == ["stock.adjusted", "stock.adjusted"]
    payload = orjson.loads(inv.rows("SELECT payload FROM outbox ORDER BY id")[1].payload)
    assert payload["type"] == "stock.adjusted"
    assert payload["data"]["delta"] == 4 and payload["data"]["reason"] == "found"
    assert payload["data"]["on_hand"] == 4 and payload["data"]["warehouse"] == "RTM"

    # A recount: the difference goes to the ledger; crossing the reorder point says so.
    res = inv.run("stock", inv.csv("recount.csv", "warehouse,sku,counted,reason", "AMS,SKU-1,2,damage"))
    assert res.exit_code == 0, res.output
    assert inv.level("AMS", "SKU-1") == (2, 0)
    assert inv.movements()[-1][:5] == ("AMS", "SKU-1", "adjustment", -8, "damage")
    assert inv.movements()[-1][6].startswith("admin:import:")  # the default actor
    assert outbox_types(inv.engine)[-2:] == ["stock.adjusted", "stock.low"]

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

    def flaky(session: Any, data: dict[str, Any]) -> str:
        calls.append(data["sku"])
        if len(calls) == 2:
            raise OperationalError(
                "UPDATE items ...", {}, Exception("server closed the connection unexpectedly")
            )
        return real(session, data)

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
    assert outbox_types(inv.engine) == ["stock.adjusted", "stock.adjusted"]
    res = inv.run("stock", path, "--dry-run")
    assert "0 adjusted, 2 no change, 2 failed" in res.stdout
    assert_inventory_invariants(inv.engine)

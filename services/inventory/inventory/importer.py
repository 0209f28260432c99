"""Bulk import of items and counted stock from CSV files (``logistics inventory import``).

The rules live here and nowhere else, so the CLI stays a thin shell around
them: a row is validated by the same marshmallow schema the REST API uses and
applied through the same domain functions, each row in its own transaction,
so one bad row never takes the good ones down with it. No click or rich here.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from logistics_shared.errors import Problem, ValidationFailed, pointer_errors
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox

from . import models
from .domain import catalog, stock
from .schemas.items import ItemCreateSchema
from .schemas.stock import AdjustmentCreateSchema

#: A column of this name is ignored, so a fixed ``--errors-csv`` file can be imported again.
ERROR_COLUMN = "error"
_DELIMITERS = (",", ";", "\t")  # comma, or what a European spreadsheet exports
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Errors that say the database itself is unusable: stop, rather than blame every row.
_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


# --- errors and results ---------------------------------------------------------
class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, bad header); nothing was applied."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or is not migrated."""


class RowInvalid(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(describe_errors(errors))
        self.errors = errors


@dataclass(frozen=True)
class RowFailure:
    line: int  # where the record starts in the file, 1-based, header included
    keys: dict[str, str]  # the cells that identify the row (sku, warehouse)
    error: str
    values: list[str]  # the raw cells, for the errors file


@dataclass
class ImportResult:
    kind: ImportKind
    dry_run: bool
    rows_read: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[RowFailure] = field(default_factory=list)
    stopped: str | None = None  # why the import stopped before the end, if it did
    stopped_at_line: int | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def succeeded(self) -> int:
        return sum(self.counts.values())

    @property
    def exit_code(self) -> int:
        """0 all rows applied, 1 some rows failed (the rest applied), 3 stopped early."""
        if self.stopped:
            return 3
        return 1 if self.failures else 0


# --- what can be imported -------------------------------------------------------
@dataclass(frozen=True)
class ImportKind:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    integers: frozenset[str]
    keys: tuple[str, ...]
    outcomes: tuple[str, ...]
    schema: type[Schema]
    #: Parsed, non-empty cells -> the body the schema validates.
    body: Callable[[dict[str, Any]], dict[str, Any]]
    #: (session, outbox, actor, validated data, columns given) -> one of ``outcomes``.
    apply: Callable[[Session, Outbox, Identity, dict[str, Any], frozenset[str]], str]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


def _item_body(cells: dict[str, Any]) -> dict[str, Any]:
    return dict(cells)


def _apply_item(
    session: Session, _outbox: Outbox, _actor: Identity, data: dict[str, Any], given: frozenset[str]
) -> str:
    if "reorder_point" not in given:
        # The schema defaults a missing reorder point to 0; that is right for a
        # new item, but a file without the column must not reset existing ones.
        exists = session.execute(select(models.items.c.id).where(models.items.c.sku == data["sku"])).first()
        if exists is not None:
            data = {k: v for k, v in data.items() if k != "reorder_point"}
    return catalog.upsert_item(session, data)


def _stock_body(cells: dict[str, Any]) -> dict[str, Any]:
    return {
        "warehouse": cells.get("warehouse"),
        "sku": cells.get("sku"),
        "counted": cells.get("counted"),
        "reason": cells.get("reason", "count"),
        "note": cells.get("note"),
        "location": None,
        "delta": None,
    }


def _apply_count(
    session: Session, outbox: Outbox, actor: Identity, data: dict[str, Any], _given: frozenset[str]
) -> str:
    return "adjusted" if stock.adjust(session, outbox, actor, data)["delta"] else "unchanged"


ITEMS = ImportKind(
    name="items",
    required=("sku", "name", "unit_weight_g", "length_mm", "width_mm", "height_mm"),
    optional=("reorder_point",),
    integers=frozenset({"unit_weight_g", "length_mm", "width_mm", "height_mm", "reorder_point"}),
    keys=("sku",),
    outcomes=("created", "updated", "unchanged"),
    schema=ItemCreateSchema,
    body=_item_body,
    apply=_apply_item,
)

STOCK = ImportKind(
    name="stock",
    required=("warehouse", "sku", "counted"),
    optional=("reason", "note"),
    integers=frozenset({"counted"}),
    keys=("warehouse", "sku"),
    outcomes=("adjusted", "unchanged"),
    schema=AdjustmentCreateSchema,
    body=_stock_body,
    apply=_apply_count,
)

KINDS = {kind.name: kind for kind in (ITEMS, STOCK)}


# --- reading the file -----------------------------------------------------------
@dataclass(frozen=True)
class CsvSource:
    """A CSV file whose header has been checked and whose records have been counted."""

    path: Path
    kind: ImportKind
    delimiter: str
    header: list[str]  # as written in the file
    columns: list[str | None]  # normalised names; None for an ignored ``error`` column
    total_rows: int  # non-blank records after the header

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """``(line number, cells)`` of every non-blank record after the header."""
        with _open(self.path) as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            next(reader, None)
            while True:
                start = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # already ruled out by the counting pass
                    raise ImportFileError(f"line {start}: {exc}") from None
                if any(cell.strip() for cell in cells):
                    yield start, cells


def _open(path: Path) -> Any:
    # utf-8-sig: spreadsheets put a byte-order mark in front of the header.
    return path.open(newline="", encoding="utf-8-sig")


def _delimiter(first_line: str) -> str:
    return max(_DELIMITERS, key=first_line.count) if any(d in first_line for d in _DELIMITERS) else ","


def open_source(path: Path, kind: ImportKind) -> CsvSource:
    """Check the header and count the records; raises :class:`ImportFileError`.

    Reading the whole file once up front also means an undecodable byte or a
    broken quote is reported before a single row has been applied.
    """
    try:
        with _open(path) as handle:
            first = handle.readline()
            if not first.strip():
                raise ImportFileError("the file is empty; the first line must be the header.")
            delimiter = _delimiter(first)
            handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader)
            columns = check_header(header, kind)
            total = 0
            while True:
                start = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise ImportFileError(f"line {start}: {exc}") from None
                if any(cell.strip() for cell in cells):
                    total += 1
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"not UTF-8 text ({exc.reason}); save it as 'CSV UTF-8'.") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read it: {exc.strerror or exc}") from None
    return CsvSource(path, kind, delimiter, header, columns, total)


def check_header(header: list[str], kind: ImportKind) -> list[str | None]:
    """Normalised column names (``None`` for an ``error`` column to ignore)."""
    names = [name.strip().lower() for name in header]
    problems = []
    missing = [c for c in kind.required if c not in names]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    unknown = [
        h.strip() or f"(empty, column {i})"
        for i, (h, n) in enumerate(zip(header, names, strict=True), 1)
        if n not in kind.columns and n != ERROR_COLUMN
    ]
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)}")
    duplicates = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicates:
        problems.append(f"repeated column(s): {', '.join(duplicates)}")
    if problems:
        expected = ", ".join(kind.required) + "".join(f"[, {c}]" for c in kind.optional)
        raise ImportFileError(f"bad header ({'; '.join(problems)}); expected columns: {expected}.")
    return [None if n == ERROR_COLUMN else n for n in names]


# --- validating one row -----------------------------------------------------------
def describe_errors(errors: list[dict[str, str]]) -> str:
    """``[{pointer: "/sku", detail: "..."}]`` -> ``"sku: ..."``, readable in a table cell."""
    parts = []
    for error in errors:
        column = error.get("pointer", "/").lstrip("/").replace("/", ".")
        detail = error["detail"].rstrip(".") if len(errors) > 1 else error["detail"]
        parts.append(f"{column}: {detail}" if column else detail)
    return "; ".join(parts)


def parse_row(
    kind: ImportKind, schema: Schema, columns: list[str | None], cells: list[str]
) -> tuple[dict[str, Any], frozenset[str]]:
    """Validated data and the columns given, or :class:`RowInvalid`."""
    if len(cells) > len(columns):
        extra = len(cells) - len(columns)
        raise RowInvalid([{"pointer": "/", "detail": f"{extra} more value(s) than the header has columns."}])
    given: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    # A spreadsheet may drop trailing empty cells: missing cells count as empty.
    for name, raw in zip(columns, cells, strict=False):
        value = raw.strip()
        if name is None or not value:
            continue
        if name in kind.integers:
            if not _INTEGER.fullmatch(value):
                errors.append({"pointer": f"/{name}", "detail": f"Not a whole number: {value!r}."})
                continue
            try:
                given[name] = int(value)
            except ValueError:  # absurdly many digits
                errors.append({"pointer": f"/{name}", "detail": "Not a valid number (too long)."})
                continue
        else:
            given[name] = value
    bad = {e["pointer"] for e in errors}
    for name in kind.required:
        if name not in given and f"/{name}" not in bad:
            errors.append({"pointer": f"/{name}", "detail": "A value is required."})
            bad.add(f"/{name}")
    try:
        data = schema.load(kind.body(given))
    except ValidationError as exc:
        errors.extend(e for e in pointer_errors(exc.messages) if e["pointer"] not in bad)
        data = {}
    if errors:
        order = {f"/{c}": i for i, c in enumerate(kind.columns)}
        errors.sort(key=lambda e: order.get(e["pointer"], len(order)))
        raise RowInvalid(errors)
    return data, frozenset(given)


def problem_message(exc: Problem) -> str:
    if isinstance(exc, ValidationFailed) and exc.errors:
        return describe_errors(exc.errors)
    return exc.detail


# --- applying ---------------------------------------------------------------------
class _DryRun(Exception):
    """Raised inside a row's transaction to roll it back after it succeeded."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome


def check_database(factory: sessionmaker[Session]) -> None:
    """Fail fast, before any row, when the database is unreachable or not migrated."""
    try:
        with factory() as session:
            session.execute(select(models.items.c.id).limit(1))
            session.execute(select(models.stock_levels.c.id).limit(1))
    except (*_UNREACHABLE, sa_exc.ProgrammingError) as exc:
        raise DatabaseUnavailable(
            f"cannot use the inventory database: {_db_message(exc)} "
            "(is it reachable, and migrated with `logistics migrate inventory`?)"
        ) from None


def _db_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def run_import(
    source: CsvSource,
    factory: sessionmaker[Session],
    actor: Identity,
    *,
    dry_run: bool = False,
    on_row: Callable[[int, str | None], None] | None = None,
) -> ImportResult:
    """Apply every record of ``source``; each row commits (or, dry, rolls back) on its own.

    ``on_row(line, outcome)`` is called after each row (``outcome`` is None
    when the row failed). A database that stops answering ends the import:
    the rows before it stay applied and the rest are neither applied nor
    reported as bad, so the same file can simply be imported again.
    """
    kind = source.kind
    schema = kind.schema()
    result = ImportResult(kind=kind, dry_run=dry_run)
    for line, cells in source.records():
        outcome: str | None = None
        try:
            data, given = parse_row(kind, schema, source.columns, cells)
            outcome = _apply(kind, factory, actor, data, given, dry_run)
        except RowInvalid as exc:
            _fail(result, source, line, cells, str(exc))
        except Problem as exc:
            _fail(result, source, line, cells, problem_message(exc))
        except _UNREACHABLE as exc:
            # This row was neither applied nor bad: it is not counted.
            result.stopped = f"the database stopped answering: {_db_message(exc)}"
            result.stopped_at_line = line
            return result
        except (sa_exc.IntegrityError, sa_exc.DataError) as exc:
            # The schemas should catch everything first; if the database still
            # refuses a row, that row is bad and the next one may be fine.
            _fail(result, source, line, cells, f"The database refused the row: {_db_message(exc)}")
        else:
            result.counts[outcome] += 1
        result.rows_read += 1
        if on_row is not None:
            on_row(line, outcome)
    return result


def _apply(
    kind: ImportKind,
    factory: sessionmaker[Session],
    actor: Identity,
    data: dict[str, Any],
    given: frozenset[str],
    dry_run: bool,
) -> str:
    try:
        with factory() as session, session.begin():
            outbox = Outbox(session, models.outbox, producer="inventory")
            outcome = kind.apply(session, outbox, actor, data, given)
            if dry_run:
                raise _DryRun(outcome)
    except _DryRun as rolled_back:
        return rolled_back.outcome
    return outcome


def _fail(result: ImportResult, source: CsvSource, line: int, cells: list[str], error: str) -> None:
    by_name = {name: cell.strip() for name, cell in zip(source.columns, cells, strict=False) if name}
    keys = {key: by_name.get(key, "") for key in source.kind.keys}
    result.failures.append(RowFailure(line=line, keys=keys, error=error, values=list(cells)))


def write_errors_csv(result: ImportResult, source: CsvSource, path: Path) -> None:
    """The failed rows as they were in the file, plus an ``error`` column: fix and import again."""
    keep = [i for i, name in enumerate(source.columns) if name is not None]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=source.delimiter)
        writer.writerow([source.header[i].strip() for i in keep] + [ERROR_COLUMN])
        for failure in result.failures:
            cells = failure.values + [""] * (len(source.columns) - len(failure.values))
            writer.writerow([cells[i] for i in keep] + [f"line {failure.line}: {failure.error}"])

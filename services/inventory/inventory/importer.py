"""Bulk import of items and counted stock from CSV files (``logistics inventory import``).

The rules live here and nowhere else, so the CLI stays a thin shell around
them: a row is validated by the same marshmallow schema the REST API uses, so
one bad row never takes the good ones down with it. The rows are applied in
chunks: on PostgreSQL a chunk is one transaction of a few set-based statements
(``domain.bulk``: COPY into a staging table, one merge per step); elsewhere
(SQLite) each row is its own transaction through the domain functions the API
uses. Both give the same ledger, events and bad-row report. No click or rich here.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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
from .domain import bulk, catalog, stock
from .schemas.items import ItemCreateSchema
from .schemas.stock import AdjustmentCreateSchema

#: A column of this name is ignored, so a fixed ``--errors-csv`` file can be imported again.
ERROR_COLUMN = "error"
_DELIMITERS = (",", ";", "\t")  # comma, or what a European spreadsheet exports
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Errors that say the database itself is unusable: stop, rather than blame every row.
_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
#: Rows per chunk (one transaction on PostgreSQL): big enough for set-based statements to pay,
#: small enough that the locks a chunk holds are released well within a shipment's time to ready.
DEFAULT_CHUNK_SIZE = 1000
MAX_CHUNK_SIZE = 10_000
# Deadlock and serialization failure: the chunk rolled back as a whole and may simply run again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
_ATTEMPTS = 3


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
    #: The same for a chunk of rows with distinct keys, set-based (PostgreSQL): line -> outcome or Problem.
    apply_chunk: Callable[[Session, Identity, Sequence[bulk.Row]], bulk.Outcomes]
    #: Validated data -> what a file may name only once, and the error for the second time.
    key: Callable[[dict[str, Any]], tuple[str, ...]]
    repeated: Callable[[dict[str, Any], int], dict[str, str]]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


def _item_body(cells: dict[str, Any]) -> dict[str, Any]:
    return dict(cells)


def _apply_item(
    session: Session, outbox: Outbox, _actor: Identity, data: dict[str, Any], given: frozenset[str]
) -> str:
    if "reorder_point" not in given:
        # The schema defaults a missing reorder point to 0; that is right for a
        # new item, but a file without the column must not reset existing ones.
        exists = session.execute(select(models.items.c.id).where(models.items.c.sku == data["sku"])).first()
        if exists is not None:
            data = {k: v for k, v in data.items() if k != "reorder_point"}
    return catalog.upsert_item(session, data, outbox)


def _item_key(data: dict[str, Any]) -> tuple[str, ...]:
    return (data["sku"],)


def _item_repeated(data: dict[str, Any], first_line: int) -> dict[str, str]:
    return {
        "pointer": "/sku",
        "detail": f"SKU {data['sku']!r} is already on line {first_line}; a file may name each SKU once.",
    }


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


def _stock_key(data: dict[str, Any]) -> tuple[str, ...]:
    return (data["warehouse"], data["sku"])


def _stock_repeated(data: dict[str, Any], first_line: int) -> dict[str, str]:
    return {
        "pointer": "/sku",
        "detail": (
            f"SKU {data['sku']!r} in warehouse {data['warehouse']!r} is already on line {first_line}; "
            "a file may count each SKU once per warehouse."
        ),
    }


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
    apply_chunk=bulk.upsert_items,
    key=_item_key,
    repeated=_item_repeated,
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
    apply_chunk=bulk.apply_counts,
    key=_stock_key,
    repeated=_stock_repeated,
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
                # A database text value cannot hold NUL: refused here, with the file, rather
                # than failing a chunk's statements (and the row-by-row fallback) later.
                if any("\x00" in cell for cell in cells):
                    raise ImportFileError(f"line {start}: a NUL character (0x00); a CSV file has none.")
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


def problem_errors(exc: Problem) -> list[dict[str, str]]:
    """A row's problem as ``[{pointer, detail}]`` (``/`` for one about the row as a whole)."""
    if isinstance(exc, ValidationFailed) and exc.errors:
        return list(exc.errors)
    return [{"pointer": "/", "detail": exc.detail}]


@dataclass(frozen=True)
class RowResult:
    """What became of one record: its ``outcome``, or the ``errors`` it failed with."""

    line: int
    cells: list[str]
    outcome: str | None
    errors: list[dict[str, str]]


#: ``checkpoint(session, results)``: called inside the transaction that applies (or, for a
#: bad row, reports) the results, so whatever it records commits or rolls back with them.
Checkpoint = Callable[[Session, list[RowResult]], None]


# --- applying ---------------------------------------------------------------------
class _DryRun(Exception):
    """Raised inside a transaction to roll it back after it succeeded."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome


class _Stopped(Exception):
    """The database stopped answering; nothing from ``line`` on was applied."""

    def __init__(self, line: int, cause: Exception) -> None:
        super().__init__(_db_message(cause))
        self.line = line


@dataclass
class _Row:
    """A record of the file after validation: ``data`` to apply, or the ``error`` it failed with."""

    line: int
    cells: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    given: frozenset[str] = frozenset()
    error: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)


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
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    set_based: bool | None = None,
    after_line: int = 0,
    checkpoint: Checkpoint | None = None,
) -> ImportResult:
    """Apply every record of ``source``, ``chunk_size`` records at a time.

    Set-based (the default on PostgreSQL) a chunk is one transaction that commits
    (or, dry, rolls back) as a whole; otherwise each row is its own transaction.
    Either way a bad row is reported and the others are applied. ``on_row(line,
    outcome)`` is called for each row once it is committed (``outcome`` is None
    when the row failed), in line order. A database that stops answering ends
    the import: the rows before the chunk (or row) it stopped in stay applied,
    the rest are neither applied nor reported as bad, so the same file can
    simply be imported again.

    ``after_line`` resumes an import whose records up to that line were applied
    (they are read again only to know which SKUs the file already named).
    ``checkpoint`` records each chunk's results in the chunk's own transaction
    (each row's, row by row), which is what makes resuming exact.
    """
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be from 1 to {MAX_CHUNK_SIZE}")
    kind = source.kind
    schema = kind.schema()
    result = ImportResult(kind=kind, dry_run=dry_run)
    if set_based is None:
        with factory() as session:
            set_based = bulk.is_supported(session)
    apply = _apply_chunk if set_based else _apply_rows
    first_lines: dict[tuple[str, ...], int] = {}

    def report(row: _Row, outcome: str | None, error: str | None = None) -> None:
        if outcome is None:
            _fail(result, source, row.line, row.cells, error or "")
        else:
            result.counts[outcome] += 1
        result.rows_read += 1
        if on_row is not None:
            on_row(row.line, outcome)

    records = source.records()
    if after_line:
        for line, cells in itertools.takewhile(lambda record: record[0] <= after_line, records):
            _validate(kind, schema, source.columns, line, cells, first_lines)
        # takewhile consumed the first record after ``after_line``: read from there again.
        records = itertools.dropwhile(lambda record: record[0] <= after_line, source.records())
    try:
        while chunk := list(itertools.islice(records, chunk_size)):
            rows = [_validate(kind, schema, source.columns, *record, first_lines) for record in chunk]
            apply(kind, factory, actor, rows, dry_run, report, checkpoint)
    except _Stopped as stop:
        result.stopped = f"the database stopped answering: {stop}"
        result.stopped_at_line = stop.line
    return result


def _validate(
    kind: ImportKind,
    schema: Schema,
    columns: list[str | None],
    line: int,
    cells: list[str],
    first_lines: dict[tuple[str, ...], int],
) -> _Row:
    try:
        data, given = parse_row(kind, schema, columns, cells)
    except RowInvalid as exc:
        return _Row(line, cells, error=str(exc), errors=exc.errors)
    first = first_lines.setdefault(kind.key(data), line)
    if first != line:
        # A second row for the same SKU would silently overwrite the first.
        repeated = [kind.repeated(data, first)]
        return _Row(line, cells, error=describe_errors(repeated), errors=repeated)
    return _Row(line, cells, data, given)


_Report = Callable[[_Row, str | None, str | None], None]


def _apply_rows(
    kind: ImportKind,
    factory: sessionmaker[Session],
    actor: Identity,
    rows: list[_Row],
    dry_run: bool,
    report: _Report,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Row by row, each in its own transaction, through the domain functions the API uses."""
    for row in rows:
        if row.error is not None:
            _fail_row(factory, row, row.error, row.errors, report, checkpoint)
            continue
        try:
            outcome = _apply(kind, factory, actor, row, dry_run, checkpoint)
        except Problem as exc:
            _fail_row(factory, row, problem_message(exc), problem_errors(exc), report, checkpoint)
        except _UNREACHABLE as exc:
            raise _Stopped(row.line, exc) from None
        except (sa_exc.IntegrityError, sa_exc.DataError) as exc:
            # The schemas should catch everything first; if the database still
            # refuses a row, that row is bad and the next one may be fine.
            message = f"The database refused the row: {_db_message(exc)}"
            _fail_row(factory, row, message, [{"pointer": "/", "detail": message}], report, checkpoint)
        else:
            report(row, outcome, None)


def _fail_row(
    factory: sessionmaker[Session],
    row: _Row,
    message: str,
    errors: list[dict[str, str]],
    report: _Report,
    checkpoint: Checkpoint | None,
) -> None:
    if checkpoint is not None:
        try:
            with factory() as session, session.begin():
                checkpoint(session, [RowResult(row.line, row.cells, None, errors)])
        except _UNREACHABLE as exc:
            raise _Stopped(row.line, exc) from None
    report(row, None, message)


def _apply(
    kind: ImportKind,
    factory: sessionmaker[Session],
    actor: Identity,
    row: _Row,
    dry_run: bool,
    checkpoint: Checkpoint | None = None,
) -> str:
    try:
        with factory() as session, session.begin():
            outbox = Outbox(session, models.outbox, producer="inventory")
            outcome = kind.apply(session, outbox, actor, row.data, row.given)
            if dry_run:
                raise _DryRun(outcome)
            if checkpoint is not None:
                checkpoint(session, [RowResult(row.line, row.cells, outcome, [])])
    except _DryRun as rolled_back:
        return str(rolled_back.outcome)
    return outcome


def _apply_chunk(
    kind: ImportKind,
    factory: sessionmaker[Session],
    actor: Identity,
    rows: list[_Row],
    dry_run: bool,
    report: _Report,
    checkpoint: Checkpoint | None = None,
) -> None:
    """The chunk's valid rows in one transaction, set-based; then every row is reported."""
    valid = [(row.line, row.data, row.given) for row in rows if row.error is None]
    try:
        if valid or checkpoint is not None:
            outcomes = _apply_set(kind, factory, actor, valid, dry_run, _chunk_checkpoint(rows, checkpoint))
        else:
            outcomes = {}
    except _UNREACHABLE as exc:
        raise _Stopped(rows[0].line, exc) from None
    except (sa_exc.IntegrityError, sa_exc.DataError):
        # Something the schemas let through and the database refuses rolled the whole
        # chunk back: apply it again row by row, so that only that row is reported.
        _apply_rows(kind, factory, actor, rows, dry_run, report, checkpoint)
        return
    for row in rows:
        if row.error is not None:
            report(row, None, row.error)
        elif isinstance(outcome := outcomes[row.line], Problem):
            report(row, None, problem_message(outcome))
        else:
            report(row, outcome, None)


def _chunk_checkpoint(
    rows: list[_Row], checkpoint: Checkpoint | None
) -> Callable[[Session, bulk.Outcomes], None] | None:
    """The chunk's results from its outcomes, handed to ``checkpoint`` in its transaction."""
    if checkpoint is None:
        return None

    def record(session: Session, outcomes: bulk.Outcomes) -> None:
        results = []
        for row in rows:
            outcome = outcomes.get(row.line) if row.error is None else None
            if isinstance(outcome, Problem):
                results.append(RowResult(row.line, row.cells, None, problem_errors(outcome)))
            elif outcome is None:
                results.append(RowResult(row.line, row.cells, None, row.errors))
            else:
                results.append(RowResult(row.line, row.cells, outcome, []))
        checkpoint(session, results)

    return record


def _apply_set(
    kind: ImportKind,
    factory: sessionmaker[Session],
    actor: Identity,
    rows: list[bulk.Row],
    dry_run: bool,
    record: Callable[[Session, bulk.Outcomes], None] | None = None,
) -> bulk.Outcomes:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with factory() as session, session.begin():
                outcomes = kind.apply_chunk(session, actor, rows) if rows else {}
                if dry_run:
                    raise _DryRun(outcomes)
                if record is not None:
                    record(session, outcomes)
            return outcomes
        except _DryRun as rolled_back:
            return dict(rolled_back.outcome)
        except sa_exc.OperationalError as exc:
            # Lock order makes a deadlock with the saga impossible, not with every writer
            # there is; the chunk rolled back whole, so running it again is safe.
            if attempt == _ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in _RETRY_SQLSTATES:
                raise
    raise AssertionError("unreachable")


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

"""``logistics inventory ...``: staff commands of the inventory service.

Thin on purpose: parsing, validating and applying rows is ``inventory.importer``;
this module turns options into a call and the result into a report.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from logistics_shared.events.inventory import REASONS

EXIT_HELP = """\b
A bad row is reported and skipped, the good rows are kept. On PostgreSQL
rows are applied in chunks of --chunk-size rows, one transaction each;
on SQLite each row is its own transaction. Importing the same file again
right away is safe: rows already applied come out unchanged. A file may
name each SKU once (stock: once per warehouse); a repeat is a bad row.
The file is UTF-8 CSV (comma- or semicolon-separated) with a header row;
column names are case-insensitive, in any order, and an `error` column
(as written by --errors-csv) is ignored, so a fixed errors file can be
imported as it is.

\b
Without a terminal, a progress line goes to stderr every
--progress-interval seconds instead of the progress bar.

\b
With --via-api URL the file is uploaded to the inventory API
(POST /v1/imports) with the token of --token or LOGISTICS_TOKEN, and the
import is followed until the service's worker is done: no database
access needed, and the token's permissions apply (items: admins; counts:
admins, and warehouse staff for their warehouse, --warehouse). There
--errors-csv is the API's report (line, column, value, reason), and
--dry-run, --actor and --chunk-size do not apply.

\b
Exit status: 0 every row applied; 1 some rows failed (the others were
applied); 2 bad usage, unreadable file or bad header (nothing applied);
3 the database stopped answering (rows before the reported line applied),
or with --via-api the service could not be reached or the import failed.
"""

ITEMS_HELP = f"""Create or update items from a CSV file, matched by SKU.

\b
Columns:
  sku            required; 1-64 letters, digits, '-', '_' or '.'
  name           required; up to 200 characters
  unit_weight_g  required; weight of one unit in grams (whole number)
  length_mm      required; millimetres (whole number)
  width_mm       required; millimetres (whole number)
  height_mm      required; millimetres (whole number)
  reorder_point  optional; warn (stock.low) when available stock falls
                 below it. New items get 0 when it is absent or empty;
                 existing items keep theirs.

\b
Example:
  sku,name,unit_weight_g,length_mm,width_mm,height_mm,reorder_point
  MUG-01,Coffee mug,350,120,90,95,24

{EXIT_HELP}"""

STOCK_HELP = f"""Set stock levels from a count (stock take) in a CSV file.

Each row sets what is on hand for a SKU in a warehouse to the counted
quantity. The difference is written to the movement ledger as an adjustment
and announced as a stock.adjusted event; a count equal to what is on hand
changes nothing. A count below the units reserved is refused for that row.

\b
Columns:
  warehouse  required; warehouse code
  sku        required; item SKU (the item must exist: import items first)
  counted    required; units counted, a whole number from 0
  reason     optional; default count; one of
             {", ".join(REASONS)}
  note       optional; up to 500 characters, kept in the ledger

\b
Example:
  warehouse,sku,counted,reason,note
  AMS,MUG-01,140,count,aisle 4 recount

{EXIT_HELP}"""

MAX_ERRORS_SHOWN = 50
# The importer's bounds, repeated so that `--help` does not import SQLAlchemy (kept equal by a test).
DEFAULT_CHUNK_SIZE = 1000
MAX_CHUNK_SIZE = 10_000
OUTCOME_LABELS = {("stock", "unchanged"): "no change"}


class UsageProblem(click.ClickException):
    """Bad usage, an unreadable file or a bad header: nothing was applied."""

    exit_code = 2


@click.group()
def inventory() -> None:
    """Inventory service commands."""


@inventory.group("import")
def import_group() -> None:
    """Bulk-import items or counted stock from CSV files."""


def _import_options(command: Callable[..., Any]) -> Callable[..., Any]:
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
    @click.option("--dry-run", is_flag=True, help="Validate and try every row, then roll it back.")
    @click.option(
        "--errors-csv",
        type=click.Path(dir_okay=False, writable=True, path_type=Path),
        help="Write the failed rows, with an `error` column, to this CSV file.",
    )
    @click.option(
        "--actor",
        default=None,
        metavar="NAME",
        help="Who the ledger records as making the changes (default: import:<your user name>).",
    )
    @click.option(
        "--chunk-size",
        type=click.IntRange(1, MAX_CHUNK_SIZE),
        default=DEFAULT_CHUNK_SIZE,
        show_default=True,
        help="Rows per transaction on PostgreSQL; smaller chunks hold row locks for less time.",
    )
    @click.option(
        "--no-progress", is_flag=True, help="No progress bar on a terminal, no progress lines without one."
    )
    @click.option(
        "--progress-interval",
        type=click.FloatRange(min=0),
        default=5.0,
        show_default=True,
        metavar="SECONDS",
        help="Without a terminal: seconds between progress lines on stderr (0: after every chunk).",
    )
    @click.option(
        "--via-api",
        metavar="URL",
        default=None,
        help="Upload to this inventory API (e.g. http://127.0.0.1:6541) and follow the import there.",
    )
    @click.option(
        "--token",
        envvar="LOGISTICS_TOKEN",
        default=None,
        metavar="JWT",
        help="With --via-api: the bearer token to upload with (default: $LOGISTICS_TOKEN).",
    )
    @click.option(
        "--warehouse",
        default=None,
        metavar="CODE",
        help="With --via-api, stock only: limit the import to this warehouse (staff: one of theirs).",
    )
    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        return command(**kwargs)

    return wrapper


@import_group.command("items", help=ITEMS_HELP)
@_import_options
def import_items(**options: Any) -> None:
    _run("items", **options)


@import_group.command("stock", help=STOCK_HELP)
@_import_options
def import_stock(**options: Any) -> None:
    _run("stock", **options)


def _default_actor() -> str:
    try:
        return f"import:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "import:unknown"


def _run(
    kind_name: str,
    file: Path,
    dry_run: bool,
    errors_csv: Path | None,
    actor: str | None,
    chunk_size: int,
    no_progress: bool,
    progress_interval: float,
    via_api: str | None = None,
    token: str | None = None,
    warehouse: str | None = None,
) -> None:
    from rich.console import Console

    from logistics_shared.db import make_engine, session_factory
    from logistics_shared.identity import Identity, Role
    from logistics_shared.settings import SettingsError, load_settings

    from . import importer

    ctx = click.get_current_context()
    if via_api is not None:
        if dry_run:
            raise click.BadParameter("is not available with --via-api", param_hint="--dry-run")
        if not token:
            raise click.BadParameter(
                "is required with --via-api (or set LOGISTICS_TOKEN)", param_hint="--token"
            )
        ctx.exit(
            _run_via_api(
                kind_name, file, via_api, token, warehouse, errors_csv, no_progress, progress_interval
            )
        )
    if warehouse is not None:
        raise click.BadParameter("applies with --via-api only", param_hint="--warehouse")
    subject = (actor if actor is not None else _default_actor()).strip()
    if not 1 <= len(subject) <= 150:
        raise click.BadParameter("must be 1-150 characters", param_hint="--actor")
    if errors_csv is not None:
        if errors_csv.resolve() == file.resolve():
            raise click.BadParameter("must not be the file being imported", param_hint="--errors-csv")
        if not errors_csv.resolve().parent.is_dir():
            raise click.BadParameter(f"no directory {errors_csv.parent}", param_hint="--errors-csv")
    try:
        source = importer.open_source(file, importer.KINDS[kind_name])
    except importer.ImportFileError as exc:
        raise UsageProblem(f"{file}: {exc}") from None
    try:
        settings = load_settings("inventory")
    except SettingsError as exc:
        raise UsageProblem(str(exc)) from None

    identity = Identity(subject=subject, role=Role.ADMIN)
    engine = make_engine(settings)
    progress_console = Console(stderr=True)
    last_line = 0
    try:
        factory = session_factory(engine)
        importer.check_database(factory)
        description = f"{'Checking' if dry_run else 'Importing'} {kind_name}"
        with _progress(
            progress_console, description, file, source.total_rows, no_progress, progress_interval
        ) as advance:

            def on_row(line: int, outcome: str | None) -> None:
                nonlocal last_line
                last_line = line
                advance(outcome)

            result = importer.run_import(
                source, factory, identity, dry_run=dry_run, on_row=on_row, chunk_size=chunk_size
            )
    except importer.DatabaseUnavailable as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(3)
    except KeyboardInterrupt:
        done = (
            f"rows up to line {last_line} were applied"
            if last_line and not dry_run
            else "nothing was applied"
        )
        click.echo(f"Interrupted: {done}; importing the same file again now is safe.", err=True)
        ctx.exit(130)
    finally:
        engine.dispose()

    ctx.exit(_report(result, source, errors_csv))


@contextlib.contextmanager
def _bar(console: Any, description: str, total: int) -> Iterator[tuple[Any, Any]]:
    """A rich progress bar on a terminal, for the direct import and for ``--via-api``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        yield bar, bar.add_task(description, total=total)


@contextlib.contextmanager
def _progress(
    console: Any, description: str, file: Path, total: int, disabled: bool, interval: float
) -> Iterator[Callable[[str | None], None]]:
    """``advance(outcome)`` after each row: a rich progress bar on a terminal, lines otherwise."""
    if disabled:
        yield lambda _outcome: None
    elif console.is_terminal:
        with _bar(console, description, total) as (bar, task):
            yield lambda _outcome: bar.advance(task)
    else:
        lines = ProgressLines(description, total, interval)
        click.echo(f"{description} from {file}: {total} row(s)", err=True)
        yield lines.advance
        lines.finish()


class ProgressLines:
    """Progress for a log rather than a terminal: a line on stderr every ``interval`` seconds.

    A cron job or a CI step shows no progress bar, and a long import must not look hung.
    """

    def __init__(
        self,
        description: str,
        total: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description, self.total, self.interval, self.clock = description, total, interval, clock
        self.started = self.last = clock()
        self.done = self.failed = 0

    def advance(self, outcome: str | None) -> None:
        self.done += 1
        if outcome is None:
            self.failed += 1
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            click.echo(self.line(now), err=True)

    def finish(self) -> None:
        click.echo(self.line(self.clock(), final=True), err=True)

    def line(self, now: float, final: bool = False) -> str:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        percent = 100 * self.done // self.total if self.total else 100
        text = f"{self.description}: {self.done}/{self.total} rows ({percent}%), {self.failed} failed"
        if final:
            return f"{text}, {rate:.0f} rows/s, done in {elapsed:.1f} s"
        left = f", about {(self.total - self.done) / rate:.0f} s left" if rate > 0 else ""
        return f"{text}, {rate:.0f} rows/s{left}"


def _run_via_api(
    kind_name: str,
    file: Path,
    base_url: str,
    token: str,
    warehouse: str | None,
    errors_csv: Path | None,
    no_progress: bool,
    interval: float,
) -> int:
    """Upload, follow, report; the exit status (see EXIT_HELP)."""
    from rich.console import Console

    from .api_import import ApiProblem, Client, follow

    try:
        client = Client(base_url, token)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--via-api") from None
    try:
        location, created = client.upload(file, kind_name, warehouse)
    except ApiProblem as exc:
        click.echo(f"Error: {file}: {exc}", err=True)
        return 3 if exc.status is None or exc.status >= 500 else 2
    total = created["rows_total"]
    click.echo(f"Uploaded {file} as import {created['id']} ({total} row(s)): {location}", err=True)
    console = Console(stderr=True)
    try:
        with _api_progress(console, f"Importing {kind_name}", total, no_progress, interval) as show:
            state = follow(client, location, interval=max(interval, 0.2), on_progress=show)
    except ApiProblem as exc:
        click.echo(f"Error: {exc}; the import goes on in the service: {location}", err=True)
        return 3
    except KeyboardInterrupt:
        click.echo(f"Interrupted: the import goes on in the service: {location}", err=True)
        return 130
    return _report_api(client, state, location, errors_csv)


@contextlib.contextmanager
def _api_progress(
    console: Any, description: str, total: int, disabled: bool, interval: float
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """``show(import state)`` after each poll: a bar on a terminal, a line per poll otherwise."""
    if disabled:
        yield lambda _state: None
    elif console.is_terminal:
        with _bar(console, description, total) as (bar, task):
            yield lambda state: bar.update(task, completed=state["rows_done"])
    else:
        lines = ProgressLines(description, total, interval)

        def show(state: dict[str, Any]) -> None:
            lines.done, lines.failed = state["rows_done"], state["rows_failed"]
            final = state["status"] in ("succeeded", "failed")
            click.echo(f"{lines.line(lines.clock(), final=final)} [{state['status']}]", err=True)

        yield show


def _report_api(client: Any, state: dict[str, Any], location: str, errors_csv: Path | None) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .api_import import ApiProblem

    console = Console(highlight=False)
    kind = state["kind"]
    from . import importer

    summary = ", ".join(
        f"{state['summary'].get(outcome, 0)} {OUTCOME_LABELS.get((kind, outcome), outcome)}"
        for outcome in importer.KINDS[kind].outcomes
    )
    console.print(
        f"{kind}: {state['rows_done']} row(s) read: {summary}, {state['rows_failed']} failed.", markup=False
    )
    if state["status"] == "failed":
        click.echo(f"Error: the import failed: {state['error']}", err=True)
        return 3
    exit_code = 1 if state["rows_failed"] else 0
    try:
        if state["rows_failed"]:
            table = Table(title="Rows not imported", title_justify="left")
            for name in ("Line", "Column", "Value", "Error"):
                table.add_column(name, overflow="fold")
            for error in client.errors(location, MAX_ERRORS_SHOWN):
                table.add_row(*(Text(str(error[k])) for k in ("line", "column", "value", "reason")))
            console.print(table)
        if errors_csv is not None:
            client.download(f"{location}/errors", errors_csv)
            console.print(
                f"Wrote the report of {state['rows_failed']} failed row(s) to {errors_csv}", markup=False
            )
    except (ApiProblem, OSError) as exc:
        click.echo(f"Error: cannot fetch the bad rows: {exc}", err=True)
        exit_code = max(exit_code, 1)
    return exit_code


def _report(result: Any, source: Any, errors_csv: Path | None) -> int:
    """Print the summary and the bad rows, write the errors file; the exit status."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from . import importer

    exit_code = result.exit_code

    console = Console(highlight=False)
    kind = result.kind
    outcomes = ", ".join(f"{result.counts[o]} {OUTCOME_LABELS.get((kind.name, o), o)}" for o in kind.outcomes)
    prefix = "Dry run, nothing saved. " if result.dry_run else ""
    console.print(
        f"{prefix}{kind.name}: {result.rows_read} row(s) read: {outcomes}, {result.failed} failed.",
        markup=False,
    )
    if result.failures:
        table = Table(title="Rows not imported", title_justify="left")
        table.add_column("Line", justify="right")
        for key in kind.keys:
            table.add_column(key.capitalize() if key != "sku" else "SKU", overflow="fold")
        table.add_column("Error", overflow="fold")
        for failure in result.failures[:MAX_ERRORS_SHOWN]:
            cells = [failure.line, *(failure.keys[k] for k in kind.keys), failure.error]
            table.add_row(*(Text(str(cell)) for cell in cells))
        console.print(table)
        hidden = result.failed - MAX_ERRORS_SHOWN
        if hidden > 0:
            more = f"and {hidden} more" + (
                " (all are in the errors file)" if errors_csv else "; see --errors-csv"
            )
            console.print(more, markup=False)
    if errors_csv is not None:
        try:
            importer.write_errors_csv(result, source, errors_csv)
            console.print(f"Wrote {result.failed} failed row(s) to {errors_csv}", markup=False)
        except OSError as exc:
            click.echo(f"Error: cannot write {errors_csv}: {exc.strerror or exc}", err=True)
            exit_code = max(exit_code, 1)
    if result.stopped:
        click.echo(
            f"Stopped at line {result.stopped_at_line}: {result.stopped}. Rows before it were "
            f"{'checked' if result.dry_run else 'applied'}; nothing from that line on. "
            "Import the same file again once the database is back (that is safe).",
            err=True,
        )
    return exit_code

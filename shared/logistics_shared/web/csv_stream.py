"""Lists as CSV for spreadsheets: ``Accept: text/csv``, streamed page after page.

A list endpoint keeps its JSON default and its one list query; with ``Accept:
text/csv`` its view hands that query to :func:`csv_response` as ``fetch(connection,
cursor) -> (rows, next cursor)``. The first page is fetched inside the request (a bad
cursor is still a 422 problem); the rest are fetched while the body is sent, on a
connection of their own from the read engine, one keyset page at a time, so neither
the server nor the client holds the whole export. Each page is a consistent read of
its own; the export as a whole follows the list's order, as its cursor pages do.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

CSV = "text/csv"
#: Rows per page of an export: large enough to make each query pay, small enough to stream.
EXPORT_PAGE = 1000
#: A cell a spreadsheet would run as a formula (CWE-1236) starts with one of these.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")

Fetch = Callable[[Any, str | None], tuple[Sequence[dict[str, Any]], str | None]]


def wants_csv(request: Request) -> bool:
    """Whether ``Accept`` prefers text/csv to JSON (no header, or ``*/*``: JSON)."""
    if "Accept" not in request.headers:
        return False
    # Best first; on a tie JSON, offered first, wins.
    offers = request.accept.acceptable_offers(["application/json", CSV])
    return bool(offers) and offers[0][0] == CSV


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        # As the JSON answer writes it; SQLite hands back naive datetimes, all of them UTC.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, str):
        # Text someone typed (a note, a reference) must not become a formula when opened.
        return "'" + value if value.startswith(_FORMULA) else value
    return str(value)


def _encode(rows: Sequence[dict[str, Any]], columns: Sequence[str], header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(name)) for name in columns])
    return buffer.getvalue().encode("utf-8")


def csv_response(
    request: Request,
    columns: Sequence[str],
    fetch: Fetch,
    *,
    cursor: str | None,
    filename: str,
) -> Response:
    """A 200 ``text/csv`` response streaming every row ``fetch`` pages through from ``cursor``."""
    first, after = fetch(request.dbsession, cursor)
    engine = request.registry["dbengine_read"]

    def body() -> Iterator[bytes]:
        yield _encode(first, columns, header=True)
        if after is None:
            return
        following: str | None = after
        while following is not None:
            # A connection per page, returned before the page is sent: a slow client must not
            # hold one (nor, on SQLite, the write lock a connection's BEGIN takes) for the
            # whole download.
            with engine.connect() as connection:
                rows, following = fetch(connection, following)
            yield _encode(rows, columns)

    response = Response(app_iter=body(), content_type=CSV, charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

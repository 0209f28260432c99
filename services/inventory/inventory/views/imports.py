"""``/v1/imports``: CSV files uploaded for the worker to apply, their progress and bad rows."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from logistics_shared.errors import ValidationFailed
from logistics_shared.web.csv_stream import CSV, EXPORT_PAGE, csv_response, wants_csv
from logistics_shared.web.endpoint import endpoint
from logistics_shared.web.idempotency import HEADER, KEY_PATTERN_ECMA, run_idempotent
from logistics_shared.web.responses import json_response
from logistics_shared.web.upload import FILE_PART, receive_file

from .. import importer
from ..domain import imports
from ..permissions import Permission
from ..schemas.imports import (
    ImportCreateQuerySchema,
    ImportErrorPageSchema,
    ImportErrorQuerySchema,
    ImportPageSchema,
    ImportQuerySchema,
    ImportSchema,
)

TAGS = ("imports",)
_IMPORT = ImportSchema()
IDEMPOTENCY_KEY = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "pattern": KEY_PATTERN_ECMA},
    "description": "Retries with the same key and the same file replay the first response "
    "(1-255 visible ASCII characters, spaces inside).",
}
_FILE: dict[str, Any] = {"type": "string", "contentMediaType": CSV}
#: What the upload may be: the file as the body, or a form with the file alone.
UPLOAD: dict[str, Any] = {
    CSV: _FILE,
    "multipart/form-data": {
        "type": "object",
        "required": [FILE_PART],
        "properties": {FILE_PART: _FILE},
        "additionalProperties": False,
    },
}


@endpoint(
    "imports",
    "POST",
    permission=Permission.IMPORTS_WRITE,
    summary="Upload a CSV file of items or counted stock; the worker applies it",
    tags=TAGS,
    query=ImportCreateQuerySchema,
    upload=UPLOAD,
    response=ImportSchema,
    status=202,
    # The Idempotency-Key is read by the view itself, after the file, which it fingerprints.
    headers=(IDEMPOTENCY_KEY,),
    references=("/warehouse", f"/{HEADER}"),
    creates="import",
    cross_field={
        "/file": "UTF-8 CSV whose first line is a header naming the kind's columns "
        "(items: sku, name, unit_weight_g, length_mm, width_mm, height_mm[, reorder_point]; "
        "stock: warehouse, sku, counted[, reason, note]), comma-, semicolon- or tab-separated, "
        "at least the header: anything else is a 422 at /file and nothing is queued"
    },
)
def create_import(request: Request, query: dict[str, Any]) -> Response:
    """The file is the body (`text/csv`) or the `file` part of a `multipart/form-data` form,
    with the columns of `logistics inventory import items|stock --help`. Its header is
    checked and its rows counted before the answer: an empty file, a bad header or a file
    that is not UTF-8 CSV is a 422 and nothing is queued. Rows are applied by the worker;
    follow `Location` for progress. Items imports are admins' only (403); warehouse staff
    import counts for one of their warehouses (`warehouse`, implied when they have one),
    and a row for any other warehouse is a bad row, worded as an unknown warehouse."""
    kind = query["kind"]
    warehouse = imports.import_scope(request.identity, kind, query["warehouse"])
    settings = request.registry["logistics.settings"]
    import_id = imports.new_import_id()
    path = imports.spool_path(imports.spool_dir(settings), import_id)
    upload = receive_file(request, path, settings.own.import_max_bytes, media_types=(CSV,))
    # An Idempotency-Key's fingerprint is the file's (the same file in another form, with
    # another boundary, is the same request), with the query as for any POST.
    request.environ["logistics.raw_body"] = upload.sha256.encode()

    def create() -> Response:
        source = importer.open_source(path, importer.KINDS[kind])
        body = imports.create_import(
            request.dbsession,
            request.identity,
            import_id=import_id,
            kind=kind,
            warehouse=warehouse,
            filename=upload.filename,
            size_bytes=upload.size,
            rows_total=source.total_rows,
        )
        location = request.route_path("import", id=import_id)
        return json_response(_IMPORT.dump(body), status=202, headers={"Location": location})

    try:
        response = run_idempotent(request, create)
    except importer.ImportFileError as exc:
        path.unlink(missing_ok=True)
        raise ValidationFailed(
            [{"pointer": f"/{FILE_PART}", "detail": f"The file cannot be imported: {exc}"}]
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if response.headers.get("Idempotent-Replayed"):
        path.unlink(missing_ok=True)  # the first request's import stands; this copy is not needed
    return response


@endpoint(
    "imports",
    "GET",
    permission=Permission.IMPORTS_READ,
    summary="List imports, newest first",
    tags=TAGS,
    query=ImportQuerySchema,
    response=ImportPageSchema,
)
def list_imports(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    """Warehouse staff see the imports of their warehouses."""
    rows, cursor = imports.list_imports(
        request.dbsession,
        request.identity,
        kind=query.get("kind"),
        status=query.get("status"),
        warehouse=query.get("warehouse"),
        cursor=query["cursor"],
        limit=query["limit"],
    )
    return {"items": rows, "next_cursor": cursor}


@endpoint(
    "import",
    "GET",
    permission=Permission.IMPORTS_READ,
    summary="An import: status, progress (rows done of total), summary",
    tags=TAGS,
    response=ImportSchema,
    problems=(404,),
)
def get_import(request: Request) -> dict[str, Any]:
    """`status` is queued, running, succeeded or failed (`error` says why: a file that
    cannot be read, or a worker that kept stopping); `rows_done` grows as chunks commit."""
    return imports.get_import(request.dbsession, request.identity, request.matchdict["id"])


@endpoint(
    "import_errors",
    "GET",
    permission=Permission.IMPORTS_READ,
    summary="An import's bad rows: line, column, value, reason (JSON or CSV)",
    tags=TAGS,
    query=ImportErrorQuerySchema,
    response=ImportErrorPageSchema,
    problems=(404,),
    alternatives={CSV: "Every bad row from `cursor` on (`limit` does not apply), streamed"},
)
def list_import_errors(request: Request, query: dict[str, Any]) -> dict[str, Any] | Response:
    """One entry per (line, column) at fault, in line order; `column` is empty for a
    fault of the row as a whole. `Accept: text/csv` gives the whole report as a file."""
    import_id, identity = request.matchdict["id"], request.identity

    def fetch(connection: Any, cursor: str | None, limit: int = EXPORT_PAGE) -> Any:
        return imports.list_errors(connection, identity, import_id, cursor=cursor, limit=limit)

    if wants_csv(request):
        return csv_response(
            request,
            imports.ERROR_COLUMNS,
            fetch,
            cursor=query["cursor"],
            filename=f"import-{import_id}-errors.csv",
        )
    rows, cursor = fetch(request.dbsession, query["cursor"], query["limit"])
    return {"items": rows, "next_cursor": cursor}

"""REST schemas of imports (CSV files applied by the worker) and their bad-row reports."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from logistics_shared.schemas import Code, PageQuerySchema, StrictSchema, UtcDateTime, page_schema

from ..models import IMPORT_KINDS, IMPORT_STATES


class ImportCreateQuerySchema(StrictSchema):
    kind = fields.String(
        required=True,
        validate=validate.OneOf(IMPORT_KINDS),
        metadata={"description": "items (admins) or stock (counted stock: admins and warehouse staff)"},
    )
    #: stock only: limit the import to this warehouse (rows for others are bad rows); warehouse
    #: staff with more than one warehouse must name one of theirs.
    warehouse = Code(load_default=None)


class ImportSummarySchema(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    adjusted = fields.Integer()


class ImportSchema(Schema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(IMPORT_KINDS))
    status = fields.String(validate=validate.OneOf(IMPORT_STATES))
    warehouse = fields.String(allow_none=True)
    filename = fields.String(allow_none=True)
    size_bytes = fields.Integer()
    rows_total = fields.Integer()
    rows_done = fields.Integer()
    rows_failed = fields.Integer()
    summary = fields.Nested(ImportSummarySchema, metadata={"description": "Rows applied, by outcome"})
    error = fields.String(allow_none=True, metadata={"description": "Why the import failed as a whole"})
    created_by = fields.String()
    created_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)


class ImportQuerySchema(PageQuerySchema):
    kind = fields.String(validate=validate.OneOf(IMPORT_KINDS))
    status = fields.String(validate=validate.OneOf(IMPORT_STATES))
    warehouse = Code()


class ImportErrorSchema(Schema):
    line = fields.Integer(metadata={"description": "Line of the file the row starts on (the header is 1)"})
    column = fields.String(metadata={"description": "The column at fault; empty for the row as a whole"})
    value = fields.String(metadata={"description": "The cell as the file had it"})
    reason = fields.String()


class ImportErrorQuerySchema(PageQuerySchema):
    pass


ImportPageSchema = page_schema(ImportSchema, "ImportPageSchema")
ImportErrorPageSchema = page_schema(ImportErrorSchema, "ImportErrorPageSchema")

"""File uploads: the request body streamed to disk under a size cap, never held in memory.

A file comes as the whole body (``text/csv``) or as the ``file`` part of a
``multipart/form-data`` form. Either way the body is copied to a file in the
spool directory in blocks while it is counted, so a body over the cap is a 413
after at most ``max_bytes + 1`` bytes, and a chunked body without
``Content-Length`` is capped the same way. A form is then parsed from that file
by the standard library's parser (the one WebOb's ``request.POST`` uses), which
writes the part to a temporary file of its own; the part is copied next to it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyramid.request import Request
from webob.compat import cgi_FieldStorage  # type: ignore[import-untyped]

from .. import errors

_BLOCK = 64 * 1024
FILE_PART = "file"


@dataclass(frozen=True)
class Upload:
    path: Path
    size: int  # bytes of the file itself (a form's part, not the whole body)
    filename: str | None
    media_type: str  # how it came: the body's content type
    sha256: str  # of the file itself, hex


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _too_large(max_bytes: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(f"The upload may be at most {max_bytes} bytes.", max_bytes=max_bytes)


def spool_body(request: Request, path: Path, max_bytes: int) -> int:
    """Copy the request body to ``path``; its size, or a 413 (and no file) when over ``max_bytes``."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    source = request.body_file if (length or request.is_body_readable) else None
    try:
        with path.open("wb") as out:
            while source is not None:
                block = source.read(min(_BLOCK, max_bytes + 1 - size))
                if not block:
                    break
                size += len(block)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size


def receive_file(request: Request, path: Path, max_bytes: int, *, media_types: tuple[str, ...]) -> Upload:
    """The uploaded file at ``path``: the body of one of ``media_types`` (UTF-8 if it says
    a charset), or the ``file`` part of a multipart form; 415, 413 or 422 otherwise."""
    content_type = (request.content_type or "").strip().lower()
    if content_type in media_types:
        if (request.charset or "utf-8").lower() not in {"utf-8", "utf8"}:
            raise errors.UnsupportedMediaType("Send the file as UTF-8 text.")
        size = spool_body(request, path, max_bytes)
        return Upload(path, size, None, content_type, _sha256(path))
    if content_type == "multipart/form-data":
        return _form_file(request, path, max_bytes)
    accepted = ", ".join(media_types)
    raise errors.UnsupportedMediaType(
        f"Send the file as the body ({accepted}) or as the {FILE_PART!r} part of multipart/form-data, "
        f"not {request.content_type or 'no content type'}."
    )


def _form_file(request: Request, path: Path, max_bytes: int) -> Upload:
    raw = path.with_name(path.name + ".form")
    size = spool_body(request, raw, max_bytes)
    try:
        with raw.open("rb") as body:
            environ = {
                "REQUEST_METHOD": "POST",
                "CONTENT_TYPE": request.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(size),
                "QUERY_STRING": "",
            }
            try:
                form: Any = cgi_FieldStorage(
                    fp=body, environ=environ, keep_blank_values=True, encoding="utf8"
                )
            except ValueError as exc:  # no or a bad boundary
                raise errors.MalformedRequest(f"The form cannot be read: {exc}.") from None
            names = [] if form.list is None else [field.name for field in form.list]
            unknown = sorted({name for name in names if name != FILE_PART})
            if unknown:
                raise errors.ValidationFailed(
                    [
                        {"pointer": f"/{name}", "detail": "Unknown form field: a form holds the file alone."}
                        for name in unknown
                    ]
                )
            part = form[FILE_PART] if FILE_PART in names else None
            if isinstance(part, list):
                raise errors.InvalidField(f"/{FILE_PART}", "Send one file part, not several.")
            if part is None or part.file is None:
                raise errors.InvalidField(
                    f"/{FILE_PART}", f"A form part named {FILE_PART!r} holding the file is required."
                )
            part.file.seek(0)
            with path.open("wb") as out:
                if hasattr(part.file, "encoding"):
                    # A part without a filename (curl -F 'file=<counts.csv') is kept as text.
                    while block := part.file.read(_BLOCK):
                        out.write(block.encode("utf-8"))
                else:
                    shutil.copyfileobj(part.file, out, _BLOCK)
            filename = Path(part.filename).name[:255] if part.filename else None
            return Upload(path, path.stat().st_size, filename, "multipart/form-data", _sha256(path))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        raw.unlink(missing_ok=True)

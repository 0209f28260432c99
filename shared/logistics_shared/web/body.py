"""Reading a JSON request body safely: content type, a size cap, bounded parsing."""

from __future__ import annotations

from typing import Any

import orjson
from pyramid.request import Request

from .. import errors


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def read_raw(request: Request, max_bytes: int) -> bytes:
    """The raw JSON body, or a 415/413/400 problem.

    The cap applies to what the app reads, chunked bodies included: at most
    ``max_bytes + 1`` bytes are read from the input stream.
    """
    if not _is_json(request.content_type or ""):
        raise errors.UnsupportedMediaType(
            f"Send the body as application/json, not {request.content_type or 'no content type'}."
        )
    length = request.content_length
    if length is not None and length > max_bytes:
        raise errors.PayloadTooLarge(f"The body may be at most {max_bytes} bytes.")
    if length is None and not request.is_body_readable:
        raw = b""
    else:
        raw = request.body_file.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise errors.PayloadTooLarge(f"The body may be at most {max_bytes} bytes.")
    if not raw.strip():
        raise errors.MalformedRequest("A JSON body is required.")
    charset = (request.charset or "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        raise errors.UnsupportedMediaType("JSON bodies must be UTF-8.")
    # Kept for the Idempotency-Key fingerprint.
    request.environ["logistics.raw_body"] = raw
    return raw


def parse_json(raw: bytes) -> Any:
    try:
        # orjson caps nesting at 1024 levels and raises instead of recursing.
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise errors.MalformedRequest(f"The body is not valid JSON: {exc}.") from None


def read_json(request: Request, max_bytes: int) -> Any:
    """The decoded body, or a 415/413/400 problem."""
    return parse_json(read_raw(request, max_bytes))

"""Reading a JSON request body safely: content type, a size cap, bounded parsing."""

from __future__ import annotations

import re
from typing import Any

import orjson
from pyramid.request import Request

from .. import errors

#: A JSON string (unrolled loop: fast on long strings) or a structural character.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:]', re.DOTALL)
#: JSON media types whose meaning is not "the document itself": a patch sent to an
#: endpoint that does not implement it must not be applied as if it were the resource.
_NOT_PLAIN_JSON = frozenset({"application/json-patch+json", "application/merge-patch+json"})


def _is_json(content_type: str) -> bool:
    # Media types are case-insensitive (RFC 9110 §8.3.1): application/JSON is JSON.
    kind = content_type.strip().lower()
    if kind in _NOT_PLAIN_JSON:
        return False
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


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


def read_optional_raw(request: Request, max_bytes: int) -> bytes:
    """An action's body: ``b""`` when none was sent, else as :func:`read_raw`.

    "None sent" means no bytes and no content type; a content type, or any
    bytes, make it a body that must be JSON like every other.
    """
    length = request.content_length
    has_bytes = bool(length) or (length is None and request.is_body_readable)
    if not has_bytes and not request.content_type:
        return b""
    if not has_bytes and _is_json(request.content_type):
        return b""
    return read_raw(request, max_bytes)


def parse_json(raw: bytes) -> Any:
    try:
        # orjson caps nesting at 1024 levels and raises instead of recursing.
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise errors.MalformedRequest(f"The body is not valid JSON: {exc}.") from None
    if b'"' in raw and isinstance(value, dict | list):
        _check_no_duplicate_members(raw)
    return value


def _check_no_duplicate_members(raw: bytes) -> None:
    """``{"quantity": 1, "quantity": 5}`` is refused, not read as 5.

    RFC 8259 leaves duplicate names undefined: a proxy or validator in front of us
    may have read the first one, and orjson silently keeps the last. The document
    is already valid and depth-bounded here, so one pass over its string and
    structural tokens (iterative: no recursion limit, linear in the body) finds
    every object's member names; names are compared decoded (``"a"`` is ``"\\u0061"``).
    """
    stack: list[set[str] | None] = []
    last_string = b""
    for match in _TOKENS.finditer(raw):
        token = match.group()
        first = token[:1]
        if first == b'"':
            last_string = token
        elif first == b":":
            names = stack[-1]
            name = orjson.loads(last_string)
            if names is not None:
                if name in names:
                    raise errors.MalformedRequest(
                        f"The body repeats the member name {name[:64]!r} in one object.",
                        member=name[:64],
                    )
                names.add(name)
        elif first == b"{":
            stack.append(set())
        elif first == b"[":
            stack.append(None)
        else:
            stack.pop()

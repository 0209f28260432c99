"""Reading the query string strictly: every name and value must be UTF-8.

WebOb decodes ``request.GET`` lazily and raises ``UnicodeDecodeError`` for a
percent-encoded byte that is not UTF-8 (``?sku=%ff``), which would surface as
a 500 from wherever the query is first touched. Endpoints read the query here
instead, and a bad byte is a 400 problem naming the parameter.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from pyramid.request import Request

from .. import errors


def _decode(raw: str) -> str | None:
    # WSGI hands the query string over as latin-1 text: back to bytes first, so
    # raw (unencoded) non-ASCII bytes are checked exactly like percent-encoded ones.
    try:
        return unquote_to_bytes(raw.replace("+", " ").encode("latin-1")).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """The query's ``(name, value)`` pairs in order, or a 400 naming the bad parameter."""
    raw = request.environ.get("QUERY_STRING", "")
    if not raw:
        return []
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name = _decode(raw_name)
        if name is None:
            raise errors.MalformedRequest(
                f"The query parameter name {raw_name[:64]!r} is not valid UTF-8 once percent-decoded.",
                parameter=raw_name[:64],
            )
        value = _decode(raw_value)
        if value is None:
            raise errors.MalformedRequest(
                f"The value of query parameter {name[:64]!r} is not valid UTF-8 once percent-decoded.",
                parameter=name[:64],
            )
        pairs.append((name, value))
    return pairs


def query_dict(request: Request) -> dict[str, str]:
    # A repeated parameter is ambiguous: the last value wins, as in most frameworks.
    return dict(query_pairs(request))

"""The ``Link: <...>; rel="next"`` header (RFC 8288) of a list page.

Every list answers ``{items, next_cursor}``; a client that follows links instead of
reading the body gets the same next page from the header: the request's own URL with
every query parameter kept (filters, ``sort``, ``limit``) and ``cursor`` replaced.
Set in one place, where :func:`~.endpoint.endpoint` renders a page.

The target is a URI reference from the path on (``</v1/items?...>``), which a client
resolves against the URL it requested (RFC 8288 §3.1, RFC 3986 §5): as with ``Location``,
nothing is built from the client's ``Host`` header, which behind a balancer names whatever
the client sent (a shared cache could otherwise keep a link to another host).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pyramid.request import Request

from .query import query_pairs

#: The OpenAPI description of the header, on every list's success response.
LINK_HEADER = {
    "Link": {
        "description": 'The next page, as RFC 8288 `<URL>; rel="next"`: this request\'s path '
        "and query (resolve it against the request URL) with `cursor` set to `next_cursor`. "
        "Absent on the last page.",
        "schema": {"type": "string"},
    }
}


def next_link(request: Request, cursor: str) -> str:
    """The ``Link`` header value naming the page after this one."""
    pairs = [(name, value) for name, value in query_pairs(request) if name != "cursor"]
    pairs.append(("cursor", cursor))
    return f'<{request.path}?{urlencode(pairs)}>; rel="next"'


def is_page(data: Any) -> bool:
    return isinstance(data, dict) and "next_cursor" in data and "items" in data

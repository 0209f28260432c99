"""``ETag`` / ``If-Match`` for versioned resources (the check itself is an atomic
``UPDATE ... WHERE version = :expected`` in the service layer).
"""

from __future__ import annotations

import re

from pyramid.request import Request

from .. import errors


def etag(version: int) -> str:
    return f'"{version}"'


#: The ETags this suite issues: a quoted version number (weak ones are accepted too).
_ETAG = re.compile(r'(?:W/)?"([0-9]{1,18})"')
#: What ``If-Match`` may hold, for the OpenAPI document.
ETAG_PATTERN_ECMA = r'^(\*|(W/)?"[0-9]{1,18}")$'


def expected_version(request: Request) -> int | None:
    """The version ``If-Match`` names; ``None`` when absent or ``*``."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    # Not int() on whatever is inside: it reads "1_0" and " 1", and a 20-digit version
    # reached the database as an out-of-range integer (a 500).
    match = _ETAG.fullmatch(header.strip())
    if match is None:
        raise errors.PreconditionFailed(f"If-Match {header!r} is not an ETag this service issued.")
    return int(match.group(1))

"""``ETag`` / ``If-Match`` for versioned resources (the check itself is an atomic
``UPDATE ... WHERE version = :expected`` in the service layer).
"""

from __future__ import annotations

import re

from pyramid.request import Request


def etag(version: int) -> str:
    return f'"{version}"'


#: The ETags this suite issues: a quoted version number (weak ones are accepted too).
_ETAG = re.compile(r'(?:W/)?"([0-9]{1,18})"')


#: What a malformed ``If-Match`` stands for: versions start at 1, so it matches none.
NO_VERSION = 0


def expected_version(request: Request) -> int | None:
    """The version ``If-Match`` names; ``None`` when absent or ``*``.

    A value that is no ETag of ours (``"1_0"``, twenty digits, garbage) matches no
    version: it is answered like a stale ETag, by the service layer, after it found
    the resource — so an unknown resource is still a 404, whatever the header says.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    # Not int() on whatever is inside: it reads "1_0" and " 1", and a 20-digit version
    # reached the database as an out-of-range integer (a 500).
    match = _ETAG.fullmatch(header.strip())
    return NO_VERSION if match is None else int(match.group(1))

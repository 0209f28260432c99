"""``ETag`` / ``If-Match`` for versioned resources (the check itself is an atomic
``UPDATE ... WHERE version = :expected`` in the service layer).
"""

from __future__ import annotations

from pyramid.request import Request

from .. import errors


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(request: Request) -> int | None:
    """The version ``If-Match`` names; ``None`` when absent or ``*``."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tag = header.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    try:
        return int(tag.strip('"'))
    except ValueError:
        raise errors.PreconditionFailed(f"If-Match {header!r} is not an ETag this service issued.") from None

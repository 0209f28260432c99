"""Errors the service layer raises, shaped as RFC 9457 problems.

Plain exceptions with no Pyramid import, so business code can raise them and a
worker can catch them; ``logistics_shared.web.problems`` renders them as
``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "urn:logistics:problem:"


class Problem(Exception):
    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def body(self, instance: str | None = None) -> dict[str, Any]:
        # Extensions first: the RFC 9457 members must never be overwritten by one.
        body: dict[str, Any] = dict(self.extensions)
        body.update(type=self.type, title=self.title, status=self.status, detail=self.detail)
        if instance:
            body["instance"] = instance
        return body


class MalformedRequest(Problem):
    status, slug, title = 400, "malformed-request", "Malformed request"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="logistics"'})
        super().__init__(detail or "A valid bearer token is required.", **kw)


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not Found"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method Not Allowed"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "Precondition Failed"

    @classmethod
    def stale(cls, what: str, current_version: int, sent_version: int) -> PreconditionFailed:
        """``If-Match`` named a version that is no longer current (the ETag is ``"<version>"``)."""
        if sent_version < 1:  # the header was no ETag of ours at all
            detail = f"If-Match names no version of this {what}; fetch it again and send its ETag."
        else:
            detail = (
                f"The {what} has changed (version {current_version}, you sent {sent_version}); "
                "fetch it again."
            )
        return cls(detail, current_etag=f'"{current_version}"')


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload Too Large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


class ValidationFailed(Problem):
    """422 with an ``errors`` list of ``{pointer, detail}``."""

    status, slug, title = 422, "validation-error", "Validation failed"

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None) -> None:
        super().__init__(detail or "The request has invalid fields.", errors=errors)
        self.errors = errors


class InvalidField(ValidationFailed):
    """One invalid field, e.g. an unknown or foreign reference inside a body."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__([{"pointer": pointer, "detail": detail}])


class TooManyRequests(Problem):
    status, slug, title = 429, "rate-limited", "Too Many Requests"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service Unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 5, **kw: Any) -> None:
        kw.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(detail, **kw)


def pointer_errors(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten marshmallow's nested ``messages`` into JSON-pointer errors.

    ``{"lines": {0: {"quantity": ["Must be..."]}}}`` becomes
    ``[{"pointer": "/lines/0/quantity", "detail": "Must be..."}]``.
    """
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                out.extend(pointer_errors(value, prefix))
            else:
                token = str(key).replace("~", "~0").replace("/", "~1")
                out.extend(pointer_errors(value, f"{prefix}/{token}"))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out.extend({"pointer": prefix or "/", "detail": m} for m in messages)
    elif isinstance(messages, list):
        for item in messages:
            out.extend(pointer_errors(item, prefix))
    else:
        out.append({"pointer": prefix or "/", "detail": str(messages)})
    return out

"""Demo data over the HTTP API: what ``logistics demo`` and ``logistics up --demo`` run.

Each service contributes its own loader (``ServiceSpec.demo``) that creates its data
through its own API with the helpers here, so the real saga runs and the shared
library never names a service. Loaders run in port order; each one waits for what
the events must have done before it moves on.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .service import ServiceSpec

T = TypeVar("T")


class DemoError(RuntimeError):
    """A demo step failed: an unexpected status (with the problem body) or a wait that timed out."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    #: Parsed JSON, or the raw bytes of anything else (a label's PDF).
    body: Any

    @property
    def etag(self) -> str:
        return self.headers.get("ETag", "")


def _decode(raw: bytes, content_type: str) -> Any:
    if "json" in content_type:
        return json.loads(raw) if raw else None
    return raw


def _quiet(_message: str) -> None:
    return None


@dataclass
class DemoContext:
    """Base URLs of the installed services by name, an admin token, and HTTP helpers."""

    urls: Mapping[str, str]
    token: str
    echo: Callable[[str], None] = _quiet
    #: Seconds a wait may take before it fails; the saga takes milliseconds on a laptop.
    timeout: float = 60.0
    poll_seconds: float = 0.2
    request_timeout: float = 15.0

    def __post_init__(self) -> None:
        # urlopen would also open file:// and custom schemes; only the services' HTTP APIs are meant.
        for service, base in self.urls.items():
            if not base.startswith(("http://", "https://")):
                raise DemoError(f"{service}: {base!r} is not an http(s) URL")

    def url(self, service: str, path: str) -> str:
        if service not in self.urls:
            raise DemoError(f"{service} is not installed here; its demo data needs it")
        return self.urls[service].rstrip("/") + path

    def call(
        self,
        method: str,
        service: str,
        path: str,
        body: Any = None,
        *,
        expect: Iterable[int] = (200, 201),
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request as the demo admin; any status outside ``expect`` raises with the problem body."""
        url = self.url(service, path)
        sent = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if key is not None:
            # A second run replays the stored response instead of creating a second copy.
            sent["Idempotency-Key"] = key
        # http(s) only: __post_init__ checked every base URL.
        request = urllib.request.Request(url, data=data, method=method, headers=sent)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as response:  # noqa: S310
                reply = Reply(
                    response.status,
                    response.headers,
                    _decode(response.read(), response.headers.get("Content-Type", "")),
                )
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, exc.headers, _decode(exc.read(), exc.headers.get("Content-Type", "")))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DemoError(f"{method} {url}: {service} is unreachable ({reason})") from None
        if reply.status not in tuple(expect):
            problem = reply.body if not isinstance(reply.body, bytes) else repr(reply.body[:500])
            raise DemoError(f"{method} {url} answered {reply.status}: {problem}")
        return reply

    def get(self, service: str, path: str, *, expect: Iterable[int] = (200,)) -> Reply:
        return self.call("GET", service, path, expect=expect)

    def post(
        self,
        service: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        expect: Iterable[int] = (200, 201),
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        return self.call("POST", service, path, body, key=key, expect=expect, headers=headers)

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float | None = None) -> T:
        """Poll ``check`` until it returns something truthy, and return that; fail naming ``what``."""
        seconds = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise DemoError(f"timed out after {seconds:g}s waiting for {what}")
            time.sleep(self.poll_seconds)

    def wait_ready(self) -> None:
        """Every service answers ``/readyz`` (a freshly started ``logistics up`` takes a moment)."""
        for service in self.urls:

            def ready(service: str = service) -> bool:
                try:
                    return self.get(service, "/readyz").status == 200
                except DemoError:
                    return False

            if not ready():
                url = self.url(service, "/readyz")
                self.echo(f"waiting for {service} at {url} (is `logistics up` running?)")
                self.wait_for(f"{service} to be ready at {url}", ready)


def run_demo(specs: Iterable[ServiceSpec], context: DemoContext) -> list[str]:
    """Run the demo loader of every service in ``specs`` in port order; the names that had one."""
    context.wait_ready()
    loaded = []
    for spec in sorted(specs, key=lambda spec: spec.port):
        if spec.demo is None:
            continue
        context.echo(f"{spec.name}: loading demo data")
        spec.demo(context)
        loaded.append(spec.name)
    return loaded

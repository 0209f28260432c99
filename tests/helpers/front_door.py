"""A client of the front door (nginx or HAProxy) that behaves as a careful API client does:
keep-alive connections, and retries only what is safe to send again, i.e. idempotent methods
and POSTs that carry an Idempotency-Key; every attempt is recorded, so a test can count what
the balancer let through (errors, the 409 of a key whose first attempt died with its replica)
and when."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
#: Statuses a careful client retries (with backoff) when the request is safe to repeat.
RETRY_STATUSES = {502, 503, 504}


@dataclass
class Attempt:
    started: float  # time.monotonic()
    ended: float
    status: int  # 0: no HTTP answer (connection refused, reset, timed out)
    error: str = ""
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """An error the front door let through: no answer, or a 5xx."""
        return self.status == 0 or self.status >= 500


@dataclass
class Outcome:
    method: str
    path: str
    key: str | None
    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1


def _in_progress(status: int, body: Any) -> bool:
    """The service's 409 for a key whose first request is still running (or whose claim a
    crashed replica left behind until its lease ends), or was just released: retry later."""
    detail = body.get("detail", "") if isinstance(body, dict) else ""
    return status == 409 and ("still being processed" in detail or "just released" in detail)


class FrontDoor:
    """One keep-alive connection per thread to ``base_url``; thread-safe."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self.timeout = timeout
        self.local = threading.local()
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None

    def _once(self, method: str, path: str, payload: bytes | None, headers: dict[str, str]) -> Attempt:
        started = time.monotonic()
        try:
            conn = self._conn()
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self._drop()
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            return Attempt(started, time.monotonic(), 0, f"{exc.__class__.__name__}: {exc}")
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Attempt(started, time.monotonic(), response.status, body=decoded, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        deadline: float = 90.0,
    ) -> Outcome:
        """Send until a final answer, retrying (only) what is safe to repeat until ``deadline`` s."""
        headers = {"Authorization": f"Bearer {self.token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        safe = method in IDEMPOTENT or key is not None
        outcome = Outcome(method, path, key)
        give_up = time.monotonic() + deadline
        pause = 0.05
        while True:
            attempt = self._once(method, path, payload, headers)
            outcome.attempts.append(attempt)
            retry = safe and (
                attempt.status == 0
                or attempt.status in RETRY_STATUSES
                or _in_progress(attempt.status, attempt.body)
            )
            if not retry or time.monotonic() + pause > give_up:
                outcome.status, outcome.body, outcome.headers = attempt.status, attempt.body, attempt.headers
                break
            # Retry-After says 1 (a running key) or 5 (a balancer's 503): a short, growing pause
            # is enough here, and the deadline bounds the whole.
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        with self.lock:
            self.outcomes.append(outcome)
        return outcome

    # -- what the front door let through ------------------------------------------------------

    def attempts(self) -> list[Attempt]:
        with self.lock:
            return [a for o in self.outcomes for a in o.attempts]

    def failed_attempts(self) -> list[Attempt]:
        return [a for a in self.attempts() if a.failed]

    def lease_waits(self) -> int:
        """Requests that waited for a crashed replica's claim on their key (409 in progress)."""
        with self.lock:
            return sum(any(a.status == 409 for a in o.attempts) for o in self.outcomes)

    def final_failures(self) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if not o.ok]

"""``logistics inventory import ... --via-api URL``: upload the file to ``POST /v1/imports``
and follow the import until the worker is done, instead of writing to the database.

Needs only the API's address and a token (no database access, no shell on a server),
and the token's permissions apply: items need an admin's, counts a warehouse's staff.
Standard library HTTP only (``urllib``): the file is sent from disk as it is read.
No click or rich here; ``cli`` prints.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The longest a single HTTP call may take (the upload is counted and checked before the 202).
TIMEOUT = 300.0
FINISHED = frozenset({"succeeded", "failed"})


class ApiProblem(Exception):
    """The API refused the request (a problem document), or could not be reached."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Client:
    base_url: str
    token: str

    def __post_init__(self) -> None:
        # urllib also opens file: and ftp: URLs; an API address is http(s) only.
        if urllib.parse.urlsplit(self.base_url).scheme not in {"http", "https"}:
            raise ValueError(f"not an http(s) URL: {self.base_url!r}")

    def _request(
        self, method: str, path: str, *, data: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        request = urllib.request.Request(  # noqa: S310 - http(s) only (__post_init__)
            urllib.parse.urljoin(self.base_url.rstrip("/") + "/", path.lstrip("/")),
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                **(headers or {}),
            },
        )
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310 - http(s) only
        except urllib.error.HTTPError as exc:
            raise ApiProblem(exc.code, _problem_text(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiProblem(None, f"cannot reach {self.base_url}: {reason}") from None

    def get_json(self, path: str) -> Any:
        with self._request("GET", path) as response:
            return json.loads(response.read())

    def upload(self, file: Path, kind: str, warehouse: str | None) -> tuple[str, dict[str, Any]]:
        """POST the file as ``text/csv``; the import's ``Location`` and body."""
        query = {"kind": kind, **({"warehouse": warehouse} if warehouse else {})}
        with file.open("rb") as body:
            headers = {"Content-Type": "text/csv", "Content-Length": str(file.stat().st_size)}
            with self._request(
                "POST", f"/v1/imports?{urllib.parse.urlencode(query)}", data=body, headers=headers
            ) as response:
                return response.headers["Location"], json.loads(response.read())

    def download(self, path: str, target: Path) -> None:
        with self._request("GET", path, headers={"Accept": "text/csv"}) as response, target.open("wb") as out:
            while block := response.read(64 * 1024):
                out.write(block)

    def errors(self, location: str, limit: int) -> list[dict[str, Any]]:
        page = self.get_json(f"{location}/errors?limit={min(max(limit, 1), 200)}")
        return list(page["items"])


def _problem_text(exc: urllib.error.HTTPError) -> str:
    try:
        problem = json.loads(exc.read())
    except ValueError:
        return f"HTTP {exc.code}"
    text = f"{problem.get('title', exc.code)}: {problem.get('detail', '')}".strip()
    details = [f"{e.get('pointer', '')}: {e.get('detail', '')}" for e in problem.get("errors", [])]
    return "; ".join([text, *details]) if details else text


def follow(
    client: Client,
    location: str,
    *,
    interval: float,
    on_progress: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the import every ``interval`` seconds until it is finished; its last state."""
    while True:
        state = client.get_json(location)
        on_progress(state)
        if state["status"] in FINISHED:
            return dict(state)
        sleep(interval)

"""Shipments over HTTP: a keep-alive client, the driver that POSTs shipments on a schedule or at
once, and what a watcher of pending shipments must offer it."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar

from .core import ADDRESS, SKUS, WAREHOUSE

LINES_PER_SHIPMENT = 2


# -- a keep-alive HTTP client (one per thread) -----------------------------------------------------


class Client:
    """One HTTP/1.1 keep-alive connection with a bearer token; not thread-safe (one per thread)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        # A GET may be retried once on a connection the server closed; a POST never is (it
        # could create a shipment twice), its failure is counted instead.
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if method == "GET" and reused and attempt == 1:
                    continue
                raise
            if response.will_close:
                self.close()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, raw.decode(errors="replace")
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


# -- what is pending: the shipments POSTed and not seen yet where they are awaited -----------------


class Poller:
    """A thread that looks for pending shipments (``_run``, in a subclass) and pops those it saw.

    The driver registers a shipment *before* its POST (``expect``, with the wall clock then)
    and forgets it when the POST failed. ``wake`` is set whenever a shipment is expected;
    entering the poller starts its thread, leaving stops it.
    """

    def __init__(self, name: str) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, datetime] = {}
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join(5)

    def _run(self) -> None:
        raise NotImplementedError

    def expect(self, reference: str, wall: datetime) -> None:
        with self.lock:
            self.pending[reference] = wall
        self.wake.set()

    def forget(self, reference: str) -> None:
        with self.lock:
            self.pending.pop(reference, None)

    def outstanding(self, references: set[str]) -> int:
        with self.lock:
            return sum(reference in self.pending for reference in references)


P = TypeVar("P", bound=Poller)


def wait_seen(poller: Poller, sent: list[Sent], timeout: float) -> None:
    """Until every created shipment of ``sent`` has been seen, or ``timeout`` seconds passed."""
    references = {item.reference for item in sent if item.status == 201}
    deadline = time.monotonic() + timeout
    while poller.outstanding(references) and time.monotonic() < deadline:
        time.sleep(0.02)


# -- driving shipments -----------------------------------------------------------------------------


@dataclass
class Sent:
    reference: str
    due: float = 0.0
    start: float = 0.0  # time.monotonic() just before the POST
    wall: datetime | None = None  # the wall clock at the same moment
    end: float = 0.0
    status: int = 0
    error: str = ""
    id: str = ""
    stamped_ms: float | None = None  # shipping's ``ready`` history ``at`` - ``wall``


def shipment_body(reference: str, n: int) -> dict[str, Any]:
    first = (n * LINES_PER_SHIPMENT) % len(SKUS)
    skus = [SKUS[(first + k) % len(SKUS)] for k in range(LINES_PER_SHIPMENT)]
    return {
        "reference": reference,
        "warehouse": WAREHOUSE,
        "ship_to": ADDRESS,
        "lines": [{"sku": sku, "quantity": 1} for sku in skus],
    }


class Driver(Generic[P]):
    """Creates shipments over HTTP with ``threads`` keep-alive clients, on a schedule or at once;
    ``watcher`` is told of each one just before its POST."""

    def __init__(self, base_url: str, token: str, watcher: P, threads: int, run_id: str) -> None:
        self.base_url, self.token, self.watcher, self.threads = base_url, token, watcher, threads
        self.run_id = run_id
        self.counter = 0

    def create(self, count: int, rate: float | None, stop: threading.Event) -> list[Sent]:
        """POST ``count`` shipments: ``rate`` per second (open loop), or all at once if None."""
        start_n = self.counter
        self.counter += count
        sent = [Sent(f"SAGA-{self.run_id}-{start_n + i}") for i in range(count)]
        jobs: queue.Queue[int | None] = queue.Queue()

        def sender() -> None:
            client = Client(self.base_url, self.token)
            try:
                while (i := jobs.get()) is not None:
                    if not stop.is_set():
                        self._post(client, sent[i], start_n + i)
            finally:
                client.close()

        workers = [
            threading.Thread(target=sender, name=f"sender-{k}", daemon=True) for k in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        try:
            begin = time.monotonic()
            for i in range(count):
                due = begin + i / rate if rate else begin
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                sent[i].due = due
                jobs.put(i)
        except BaseException:
            stop.set()  # interrupted: the senders drop what is still queued
            raise
        finally:
            for _ in workers:
                jobs.put(None)
            for worker in workers:
                worker.join()
        return sent

    def _post(self, client: Client, item: Sent, n: int) -> None:
        item.wall = datetime.now(UTC)
        self.watcher.expect(item.reference, item.wall)
        item.start = time.monotonic()
        try:
            status, body = client.request("POST", "/v1/shipments", shipment_body(item.reference, n))
        except (http.client.HTTPException, OSError) as exc:
            status, body = 0, f"{exc.__class__.__name__}: {exc}"
        item.end = time.monotonic()
        item.status = status
        if status == 201 and isinstance(body, dict):
            item.id = str(body.get("id", ""))
        if status != 201:
            item.error = f"{status}: {str(body)[:300]}"
            self.watcher.forget(item.reference)

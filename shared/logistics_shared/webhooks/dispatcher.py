"""``logistics dispatcher <svc>``: one asyncio loop that sends due webhook deliveries.

Delivering to many slow remote endpoints is waiting, not computing: one event loop
holds thousands of requests in flight with a fraction of the threads and memory a
thread per request needs (``bench/webhooks.py`` measures both on this machine).

- Claims due deliveries in batches (:mod:`.store`: leases, ``SKIP LOCKED``) as slots
  free up, woken by the fan-out's ``NOTIFY`` on PostgreSQL or a short poll.
- At most ``webhook_endpoint_concurrency`` requests per endpoint and
  ``webhook_max_in_flight`` in all; connect and read timeouts; at most
  ``webhook_max_response_bytes`` of an answer read; redirects are not followed.
- Connects only where :mod:`.addresses` allows, checked after DNS resolution.
- Outcomes are written in batches by one writer task (a few transactions a second
  at any rate), retries scheduled with backoff and jitter.
- ``stop()``: no new claims; in-flight requests get the grace period to finish,
  then are cancelled and their deliveries released for the next dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp

from ..logs import describe_error
from ..settings import Settings
from . import signing
from .addresses import guarded_connector, parse_networks, refused
from .fanout import dispatch_channel
from .metrics import WebhookMetrics
from .store import LOGGED_BODY_BYTES, Claimed, DeliveryStore, Outcome

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How many deliveries one claim takes at most.
CLAIM_BATCH = 200
#: Seconds a wake-up waits for more slots to free before claiming.
CLAIM_DEBOUNCE = 0.02
#: An endpoint gets at most this many waves of its concurrency claimed ahead.
WAVES = 2
#: Writes of one batch of outcomes tried before it is given up (the database is down longer).
RECORD_TRIES = 30


def attempt_seconds(settings: Settings) -> float:
    """The longest one attempt takes: connecting, then waiting for the answer."""
    return settings.webhook_connect_timeout + settings.webhook_read_timeout


def lease(settings: Settings) -> timedelta:
    """How long a claim holds: every wave claimed ahead can run to its timeouts, with a margin."""
    return timedelta(seconds=WAVES * attempt_seconds(settings) + 10)


class Dispatcher:
    def __init__(self, service: str, settings: Settings, registry: Any) -> None:
        tables = registry["logistics.platform_tables"].webhooks
        if tables is None:
            raise ValueError(f"the {service} service has no webhooks")
        self.service = service
        self.settings = settings
        self.box = registry["logistics.secretbox"]
        self.metrics: WebhookMetrics = registry["logistics.webhook_metrics"]
        self.engine = registry["dbengine"]
        self.store = DeliveryStore.from_settings(service, tables, registry["dbsession_factory"], settings)
        self.allow = parse_networks(settings.webhook_allow_networks)
        self.attempt_seconds = attempt_seconds(settings)
        self.lease = lease(settings)
        self.per_endpoint = settings.webhook_endpoint_concurrency
        self.max_in_flight = settings.webhook_max_in_flight
        self.grace = settings.web_graceful_timeout
        #: Set once the loop is running and has reached the database; cleared when it stops.
        self.running = threading.Event()
        self.last_beat = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self._stopping: asyncio.Event | None = None
        self._db = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"{service}-dispatcher-db")

    # -- lifecycle --------------------------------------------------------------
    def run(self) -> None:
        """Run until :meth:`stop` (in the calling thread, on an event loop of its own)."""
        asyncio.run(self._main())

    def stop(self) -> None:
        """Thread-safe: stop claiming; the loop drains in-flight work and returns."""
        # Also before the loop runs (a SIGTERM at start-up): _main sees the flag.
        self._stop_requested = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it closed just now: it has stopped
                loop.call_soon_threadsafe(stopping.set)

    def readiness(self) -> dict[str, Any]:
        alive = self.running.is_set() and time.monotonic() - self.last_beat < max(
            10.0, 3 * self.settings.webhook_poll_seconds
        )
        return {
            "status": "ready" if alive else "unavailable",
            "dispatcher": "running" if alive else "stopped",
        }

    # -- the loop ---------------------------------------------------------------
    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop_requested:
            self._stopping.set()
        self._wake = asyncio.Event()
        self._results: list[Outcome] = []
        self._tasks: dict[asyncio.Task[None], Claimed] = {}
        self._per_endpoint: dict[str, int] = defaultdict(int)
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._record_failures = 0
        timeout = aiohttp.ClientTimeout(
            total=self.attempt_seconds,
            sock_connect=self.settings.webhook_connect_timeout,
            sock_read=self.settings.webhook_read_timeout,
        )
        connector = guarded_connector(self.allow, limit=self.max_in_flight, limit_per_host=0)
        helpers = [
            asyncio.create_task(self._writer(), name="webhook-writer"),
            asyncio.create_task(self._gauges(), name="webhook-gauges"),
            asyncio.create_task(self._listen(), name="webhook-listen"),
        ]
        try:
            async with aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            ) as http:
                self.http = http
                await self._claim_loop()
                await self._drain()
        finally:
            self.running.clear()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await asyncio.gather(*self._background, return_exceptions=True)
            await self._flush()
            self._db.shutdown(wait=True)

    async def _claim_loop(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            self.last_beat = time.monotonic()
            free = self.max_in_flight - len(self._tasks)
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    # One wave of each endpoint's concurrency at most, and none for endpoints
                    # with no room for a wave: all it claims can start (a slow endpoint's
                    # backlog is not claimed only to be given back, over and over).
                    busy = (WAVES - 1) * self.per_endpoint
                    full = [e for e, n in self._per_endpoint.items() if n > busy]
                    claimed = await self._in_db(
                        self.store.claim, min(free, CLAIM_BATCH), self.lease, full, self.per_endpoint
                    )
                    self.running.set()
                except Exception as exc:  # noqa: BLE001 - the database is down: wait and retry
                    log.warning(
                        "webhook claim failed (%s)", describe_error(exc), extra={"service": self.service}
                    )
                    self.running.clear()
            self._start(claimed)
            if len(claimed) < min(free, CLAIM_BATCH) or free <= 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_or_stop(), self.settings.webhook_poll_seconds)
                    # Woken (a delivery finished, or new ones were written): a moment more
                    # collects the others finishing now into the same claim, so the claims
                    # come in tens per second, not one per finished delivery.
                    await asyncio.sleep(CLAIM_DEBOUNCE)

    async def _wake_or_stop(self) -> None:
        assert self._stopping is not None
        wake = asyncio.create_task(self._wake.wait())
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({wake, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
            stop.cancel()

    def _start(self, claimed: list[Claimed]) -> None:
        excess = []
        for delivery in claimed:
            if self._per_endpoint[delivery.endpoint_id] >= WAVES * self.per_endpoint:
                excess.append(delivery)  # more than this endpoint takes now: another round
                continue
            self._per_endpoint[delivery.endpoint_id] += 1
            task = asyncio.create_task(self._send(delivery))
            self._tasks[task] = delivery
            task.add_done_callback(self._finished)
        self.metrics.in_flight.set(len(self._tasks))
        if excess:
            self._release_later(excess)

    def _finished(self, task: asyncio.Task[None]) -> None:
        delivery = self._tasks.pop(task)
        left = self._per_endpoint[delivery.endpoint_id] - 1
        if left:
            self._per_endpoint[delivery.endpoint_id] = left
        else:
            del self._per_endpoint[delivery.endpoint_id]
            self._semaphores.pop(delivery.endpoint_id, None)
        self.metrics.in_flight.set(len(self._tasks))
        self._wake.set()

    def _release_later(self, deliveries: list[Claimed]) -> None:
        async def release() -> None:
            try:
                await self._in_db(self.store.release, deliveries)
            except Exception as exc:  # noqa: BLE001 - their leases run out instead
                log.warning("could not release %d deliveries (%s)", len(deliveries), describe_error(exc))

        task = asyncio.create_task(release())
        # The loop keeps only weak references to tasks: hold it until it is done.
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- one attempt ------------------------------------------------------------
    async def _send(self, delivery: Claimed) -> None:
        semaphore = self._semaphores.get(delivery.endpoint_id)
        if semaphore is None:
            semaphore = self._semaphores[delivery.endpoint_id] = asyncio.Semaphore(self.per_endpoint)
        async with semaphore:
            assert self._stopping is not None
            # Only with room for a whole attempt inside the lease: after it, another
            # dispatcher may claim the delivery, and both would send it.
            room = (delivery.claimed_until - datetime.now(UTC)).total_seconds()
            if self._stopping.is_set() or room < self.attempt_seconds + 2:
                self._release_later([delivery])
                return
            outcome = await self._attempt(delivery)
        self.metrics.attempts.labels(self.service, outcome.outcome).inc()
        self.metrics.attempt_seconds.observe(outcome.latency_ms / 1000)
        self._results.append(outcome)

    async def _attempt(self, delivery: Claimed) -> Outcome:
        started = datetime.now(UTC)
        clock = time.monotonic()
        secrets = [self.box.decrypt(s) for s in delivery.secrets]
        headers = signing.headers(delivery.message_id, started, delivery.payload, secrets)

        def done(outcome: str, **fields: Any) -> Outcome:
            elapsed = int((time.monotonic() - clock) * 1000)
            return Outcome(delivery, outcome, started, elapsed, **fields)

        try:
            async with self.http.post(
                delivery.url, data=delivery.payload, headers=headers, allow_redirects=False
            ) as response:
                body = await response.content.read(self.settings.webhook_max_response_bytes)
                text = body[:LOGGED_BODY_BYTES].decode("utf-8", "replace")
                status = response.status
        except TimeoutError:
            return done("timeout", error=f"no answer within {self.attempt_seconds:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refusal = refused(exc)
            if refusal is not None:
                return done("refused", error=str(refusal))
            return done("connect_error", error=describe_error(exc))
        if 200 <= status < 300:
            return done("delivered", status_code=status, response_body=text)
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        return done("http_error", status_code=status, response_body=text, error=error)

    # -- writing outcomes -------------------------------------------------------
    async def _writer(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            await self._flush()

    async def _flush(self) -> None:
        if not self._results:
            return
        batch, self._results = self._results, []
        try:
            disabled = await self._in_db(self.store.record, batch)
        except Exception as exc:  # noqa: BLE001 - keep them and try again
            self._record_failures += 1
            if self._record_failures >= RECORD_TRIES:
                # Their leases run out and they are sent again: a duplicate, never a loss,
                # rather than one bad batch stopping every later one from being written.
                log.error(
                    "dropping %d webhook outcomes after %d failed writes (%s)",
                    len(batch),
                    self._record_failures,
                    describe_error(exc),
                    extra={"service": self.service},
                )
                self._record_failures = 0
                return
            log.warning("could not record %d webhook attempts (%s)", len(batch), describe_error(exc))
            self._results[:0] = batch
            await asyncio.sleep(1.0)
            return
        self._record_failures = 0
        for outcome in batch:
            if outcome.ok:
                self.metrics.deliveries.labels(self.service, "delivered").inc()
            elif outcome.delivery.attempts >= len(self.store.retry_delays):
                self.metrics.deliveries.labels(self.service, "failed").inc()
        for endpoint in disabled:
            self.metrics.auto_disabled.inc()
            log.warning(
                "webhook endpoint %s disabled: failing since %s",
                endpoint["endpoint_id"],
                endpoint["failing_since"],
                extra={"service": self.service},
            )

    async def _drain(self) -> None:
        """Shutdown: in-flight attempts get the grace period, then are cancelled and released."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.grace)
        if pending:
            unsent = [self._tasks[t] for t in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            try:
                await self._in_db(self.store.release, unsent)
            except Exception as exc:  # noqa: BLE001 - their leases run out instead
                log.warning("could not release %d deliveries (%s)", len(unsent), describe_error(exc))

    # -- gauges, housekeeping, wake-ups -----------------------------------------
    async def _gauges(self) -> None:
        next_purge = 0.0
        while True:
            try:
                due, age, disabled = await self._in_db(self.store.backlog)
                self.metrics.due.set(due)
                self.metrics.oldest_due_age.set(age)
                for reason in ("failing", "manual"):
                    self.metrics.endpoints_disabled.labels(self.service, reason).set(disabled.get(reason, 0))
                if time.monotonic() >= next_purge:
                    await self._in_db(self.store.purge)
                    next_purge = time.monotonic() + 60.0
            except Exception as exc:  # noqa: BLE001 - a gauge must not stop the dispatcher
                log.warning("webhook gauges failed (%s)", describe_error(exc))
            await asyncio.sleep(5.0)

    async def _listen(self) -> None:
        """Wake on the fan-out's NOTIFY (PostgreSQL); elsewhere the poll does."""
        if self.engine.dialect.name != "postgresql":
            return
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
                async with conn:
                    await conn.execute(f'LISTEN "{dispatch_channel(self.service)}"')
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - poll meanwhile, listen again shortly
                log.debug("webhook LISTEN lost (%s)", describe_error(exc))
            await asyncio.sleep(5.0)

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, fn, *args)

"""The two senders bench/webhooks.py compares, each run as a process of its own.

    python bench/kit/webhook_sides.py asyncio|threads CONFIG.json [--threads 32]

Both build the shipping service's registry the way ``logistics dispatcher shipping`` does
(``cli.make_app(spec, settings, web=False)``, settings from CONFIG through
``load_settings(..., environ={})``), then:

- ``asyncio``: the real :class:`~logistics_shared.webhooks.dispatcher.Dispatcher`, run on a
  thread of its own as ``logistics dispatcher`` runs it (the health server is left out: it
  sends nothing).
- ``threads``: the baseline, a thread-pool dispatcher: the same :class:`DeliveryStore`
  (``claim`` with the same lease, ``record`` in batches every 50 ms from a writer thread, woken
  by the same ``NOTIFY``), the same signing (``signing.headers`` with the secrets decrypted
  per attempt), the same timeouts, response cap and outcome classes; it sends with
  ``requests`` (a keep-alive ``Session`` per thread) on a ``ThreadPoolExecutor`` of
  ``--threads`` threads, claiming at most two deliveries per thread ahead.

Protocol with the parent: one JSON line ``{"ready": ...}`` on stdout once the first claim
reached the database; a line ``stop`` on stdin stops it (the dispatcher's own graceful stop);
a last JSON line says what it did. Runs as a script; imports nothing of the bench kit.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from logistics_shared.webhooks import signing
from logistics_shared.webhooks.addresses import parse_networks, refusal
from logistics_shared.webhooks.store import LOGGED_BODY_BYTES, DeliveryStore, Outcome

SERVICE = "shipping"
#: As the dispatcher: at most this many deliveries per claim, and a writer every 50 ms.
CLAIM_BATCH = 200
WRITE_EVERY = 0.05


def registry(config: dict[str, Any]) -> tuple[Any, Any]:
    from logistics_shared.cli import make_app
    from logistics_shared.service import discover
    from logistics_shared.settings import load_settings

    settings = load_settings(SERVICE, config, environ={})
    app = make_app(discover()[SERVICE], settings, web=False)
    return settings, app.registry


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def wait_for_stop() -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            return


# -- (A) the asyncio dispatcher -----------------------------------------------------------------


def run_asyncio(config: dict[str, Any]) -> None:
    from logistics_shared.webhooks.dispatcher import Dispatcher

    settings, reg = registry(config)
    runner = Dispatcher(SERVICE, settings, reg)
    thread = threading.Thread(target=runner.run, name=f"{SERVICE}-dispatcher", daemon=True)
    thread.start()
    if not runner.running.wait(60):
        raise SystemExit("the dispatcher did not reach the database in 60 s")
    say(ready=True, max_in_flight=runner.max_in_flight, per_endpoint=runner.per_endpoint)
    wait_for_stop()
    runner.stop()
    thread.join(runner.grace + 10)
    say(stopped=not thread.is_alive())


# -- (B) the thread-pool baseline ----------------------------------------------------------------


class ThreadPoolDispatcher:
    """Claims like the dispatcher, sends each delivery on a pool thread with ``requests``."""

    def __init__(self, settings: Any, reg: Any, threads: int) -> None:
        from logistics_shared.webhooks.dispatcher import attempt_seconds, lease

        self.settings = settings
        self.box = reg["logistics.secretbox"]
        self.engine = reg["dbengine"]
        self.store = DeliveryStore.from_settings(
            SERVICE, reg["logistics.platform_tables"].webhooks, reg["dbsession_factory"], settings
        )
        self.allow = parse_networks(settings.webhook_allow_networks)
        # The same attempt bound and lease as the dispatcher's.
        self.attempt_seconds = attempt_seconds(settings)
        self.lease = lease(settings)
        self.timeout = (settings.webhook_connect_timeout, settings.webhook_read_timeout)
        self.threads = threads
        self.ahead = 2 * threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="baseline-send")
        self.local = threading.local()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.results: list[Any] = []
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.sent = 0

    # -- one attempt, as Dispatcher._attempt does it ------------------------------------------
    def _session(self) -> Any:
        session = getattr(self.local, "session", None)
        if session is None:
            import requests

            session = self.local.session = requests.Session()
        return session

    def attempt(self, delivery: Any) -> Outcome:
        import requests

        started = datetime.now(UTC)
        clock = time.monotonic()
        secrets = [self.box.decrypt(s) for s in delivery.secrets]
        headers = signing.headers(delivery.message_id, started, delivery.payload, secrets)

        def done(outcome: str, **fields: Any) -> Outcome:
            elapsed = int((time.monotonic() - clock) * 1000)
            return Outcome(delivery, outcome, started, elapsed, **fields)

        # The bench's URLs are IP literals: the address check the guarded connector makes.
        host = urlsplit(delivery.url).hostname or ""
        try:
            why = refusal(host, self.allow)
        except ValueError:
            why = None  # a name: the baseline has no guarded resolver (the bench uses none)
        if why is not None:
            return done("refused", error=why)
        cap = self.settings.webhook_max_response_bytes
        try:
            with self._session().post(
                delivery.url,
                data=delivery.payload,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                body = bytearray()
                for chunk in response.iter_content(8192):
                    body += chunk
                    if len(body) >= cap:
                        break
                text = bytes(body[:LOGGED_BODY_BYTES]).decode("utf-8", "replace")
                status = response.status_code
        except requests.Timeout:
            return done("timeout", error=f"no answer within {self.attempt_seconds:g} s")
        except (requests.RequestException, OSError, ValueError) as exc:
            return done("connect_error", error=f"{exc.__class__.__name__}: {exc}")
        if 200 <= status < 300:
            return done("delivered", status_code=status, response_body=text)
        return done("http_error", status_code=status, response_body=text, error=f"HTTP {status}")

    def send(self, delivery: Any) -> None:
        try:
            room = (delivery.claimed_until - datetime.now(UTC)).total_seconds()
            if self.stopping.is_set() or room < self.attempt_seconds + 2:
                self.store.release([delivery])
                return
            outcome = self.attempt(delivery)
            with self.lock:
                self.results.append(outcome)
                self.sent += 1
        finally:
            with self.lock:
                self.in_flight -= 1
            self.wake.set()

    # -- claiming, writing, waking ----------------------------------------------------------------
    def claim_loop(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                free = self.ahead - self.in_flight
            want = min(free, CLAIM_BATCH)
            claimed = self.store.claim(want, self.lease) if want > 0 else []
            self.ready.set()
            with self.lock:
                self.in_flight += len(claimed)
            for delivery in claimed:
                self.pool.submit(self.send, delivery)
            if len(claimed) < want or want <= 0:
                self.wake.wait(self.settings.webhook_poll_seconds)
                self.wake.clear()

    def writer(self) -> None:
        while True:
            last = self.stopping.is_set() and self.in_flight == 0
            if not last:
                time.sleep(WRITE_EVERY)
            with self.lock:
                batch, self.results = self.results, []
            if batch:
                try:
                    self.store.record(batch)
                except Exception as exc:  # as the dispatcher: keep them and try again
                    print(f"baseline: could not record {len(batch)} attempts ({exc})", file=sys.stderr)
                    with self.lock:
                        self.results[:0] = batch
                    time.sleep(1.0)
                    continue
            if last:
                return

    def listen(self) -> None:
        import psycopg

        from logistics_shared.webhooks.fanout import dispatch_channel

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'LISTEN "{dispatch_channel(SERVICE)}"')
            for _ in conn.notifies():
                self.wake.set()

    def run(self) -> None:
        threading.Thread(target=self.listen, name="baseline-listen", daemon=True).start()
        writer = threading.Thread(target=self.writer, name="baseline-writer")
        writer.start()
        try:
            self.claim_loop()
        finally:
            self.pool.shutdown(wait=True)
            writer.join()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()


def run_threads(config: dict[str, Any], threads: int) -> None:
    settings, reg = registry(config)
    runner = ThreadPoolDispatcher(settings, reg, threads)
    thread = threading.Thread(target=runner.run, name="baseline-claims", daemon=True)
    thread.start()
    if not runner.ready.wait(60):
        raise SystemExit("the baseline did not reach the database in 60 s")
    say(ready=True, threads=threads, ahead=runner.ahead)
    wait_for_stop()
    runner.stop()
    thread.join(60)
    say(stopped=not thread.is_alive(), sent=runner.sent)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("side", choices=("asyncio", "threads"))
    parser.add_argument("config", help="JSON file: the settings (load_settings ini values)")
    parser.add_argument("--threads", type=int, default=32, help="the baseline's pool size")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as file:
        config = json.load(file)
    if args.side == "asyncio":
        run_asyncio(config)
    else:
        run_threads(config, args.threads)


if __name__ == "__main__":
    sys.exit(main())

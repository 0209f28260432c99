"""A webhook receiver on loopback for tests: an aiohttp server in a thread that verifies
every request's Standard Webhooks signature (with the ``standardwebhooks`` package, as an
integrator would) and answers per path: ``/ok``, ``/fail/<n>`` (500 for the first n
requests of a message, then 200), ``/hang`` (never answers in time), ``/down`` (always 500),
``/redirect`` (302 to ``/ok``), ``/slow…`` (200 after 0.3 s)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    message_id: str
    body: dict[str, Any]
    verified: bool
    signatures: int


class Receiver:
    def __init__(self, host: str = "127.0.0.1", hang_seconds: float = 30.0) -> None:
        self.host = host
        self.hang_seconds = hang_seconds
        #: path -> the signing secret requests to it must verify with
        self.secrets: dict[str, str] = {}
        self.received: list[Received] = []
        self.seen: Counter[tuple[str, str]] = Counter()
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="webhook-receiver")

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def start(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10), "the receiver did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, self.host, 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        path = request.path
        message_id = request.headers.get("webhook-id", "")
        verified = False
        secret = self.secrets.get(path)
        if secret is not None:
            try:
                Webhook(secret).verify(raw, dict(request.headers))
                verified = True
            except WebhookVerificationError:
                verified = False
        signatures = len(request.headers.get("webhook-signature", "").split())
        self.received.append(Received(path, message_id, orjson.loads(raw), verified, signatures))
        self.seen[(path, message_id)] += 1
        if path.startswith("/fail/"):
            if self.seen[(path, message_id)] <= int(path.rsplit("/", 1)[1]):
                return web.Response(status=500, text="not yet")
        elif path.startswith("/slow"):
            await asyncio.sleep(0.3)
        elif path == "/hang":
            await asyncio.sleep(self.hang_seconds)
        elif path == "/down":
            return web.Response(status=500, text="down")
        elif path == "/redirect":
            raise web.HTTPFound(self.url("/ok"))
        return web.Response(status=200, text="thanks")

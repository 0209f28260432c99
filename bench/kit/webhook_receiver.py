"""A slow Standard Webhooks receiver for bench/webhooks.py: one aiohttp process on 127.0.0.1.

    python bench/kit/webhook_receiver.py --secrets FILE [--delay-ms 100,500] [--verify-every 20]

``POST /e/<n>`` is endpoint n: it counts the request, verifies the signature of the first
request and of every ``--verify-every``-th after it with the ``standardwebhooks`` package
against endpoint n's secret (``FILE``: a JSON object, endpoint number -> ``whsec_`` secret; a
bad signature is answered 400), then answers ``200 ok`` after a delay drawn uniformly from
``--delay-ms``. ``GET /stats`` gives the counts since the last ``POST /reset``: requests, the
verified sample, bad signatures, repeated (endpoint, webhook-id) pairs, the TCP connections
seen, the most requests waiting at once (what the sender held in flight here), and how late
the loop woke from each delay (the receiver's own saturation: a late wake-up is time the
sender did not cause). The process binds a free port and prints ``{"port": N}`` first.

Run as a script by bench/webhooks.py; it imports nothing of the bench kit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import signal
import sys

from aiohttp import web
from standardwebhooks import Webhook


class Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.verified = 0
        self.bad_signatures = 0
        self.duplicates = 0
        self.seen: set[tuple[str, str]] = set()
        self.connections: set[object] = set()
        self.lags: list[float] = []
        self.open = 0
        self.peak_open = 0

    def stats(self) -> dict[str, object]:
        lags = sorted(self.lags)

        def at(q: float) -> float:
            return lags[min(len(lags) - 1, max(0, round(q * len(lags)) - 1))] * 1000 if lags else 0.0

        return {
            "requests": self.requests,
            "verified": self.verified,
            "bad_signatures": self.bad_signatures,
            "duplicates": self.duplicates,
            "connections": len(self.connections),
            "peak_open": self.peak_open,
            "lag_p50_ms": at(0.50),
            "lag_p99_ms": at(0.99),
            "lag_max_ms": lags[-1] * 1000 if lags else 0.0,
        }


def make_app(secrets: dict[str, str], low: float, high: float, verify_every: int) -> web.Application:
    hooks = {n: Webhook(secret) for n, secret in secrets.items()}
    counts = Counts()

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.read()
        n = request.match_info["n"]
        counts.requests += 1
        counts.connections.add(request.transport)
        key = (n, request.headers.get("webhook-id", ""))
        if key in counts.seen:
            counts.duplicates += 1
        else:
            counts.seen.add(key)
        if counts.requests % verify_every == 1 or verify_every == 1:
            try:
                hooks[n].verify(body, dict(request.headers), json_parse=False)
            except Exception:
                counts.bad_signatures += 1
                return web.Response(status=400, text="bad signature")
            counts.verified += 1
        delay = random.uniform(low, high)
        loop = asyncio.get_running_loop()
        start = loop.time()
        counts.open += 1
        counts.peak_open = max(counts.peak_open, counts.open)
        try:
            await asyncio.sleep(delay)
        finally:
            counts.open -= 1
        counts.lags.append(loop.time() - start - delay)
        return web.Response(text="ok")

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(counts.stats())

    async def reset(_request: web.Request) -> web.Response:
        counts.reset()
        return web.json_response({"reset": True})

    app = web.Application()
    app.add_routes([web.post("/e/{n}", endpoint), web.get("/stats", stats), web.post("/reset", reset)])
    return app


async def serve(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # A deep accept queue: a sender opening a thousand connections at once must not see SYN retries.
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--secrets", required=True, help="JSON file: endpoint number -> whsec_ secret")
    parser.add_argument("--delay-ms", default="100,500", help="uniform answer delay, min,max in ms")
    parser.add_argument("--verify-every", type=int, default=20, help="verify one request in this many")
    args = parser.parse_args()
    low, high = (float(part) / 1000 for part in args.delay_ms.split(","))
    with open(args.secrets, encoding="utf-8") as file:
        secrets = json.load(file)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(make_app(secrets, low, high, max(1, args.verify_every))))


if __name__ == "__main__":
    sys.exit(main())

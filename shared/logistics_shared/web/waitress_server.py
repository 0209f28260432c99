"""waitress with a graceful SIGTERM, for ``logistics serve --server waitress`` and ``up``.

waitress itself stops at once on SIGTERM (or ignores it as PID 1 in a container),
cutting requests in flight. Here SIGTERM stops accepting (the listening socket
closes, so a balancer's next connect fails fast and goes elsewhere), lets the
requests in flight finish and their answers go out, bounded by a timeout, then
ends the loop so the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


def _busy(server: Any) -> bool:
    dispatcher = server.task_dispatcher
    if dispatcher.active_count or dispatcher.queue:
        return True
    # A channel receiving a request (its body still arriving), holding one, or with an
    # answer not yet written out.
    return any(
        getattr(channel, "request", None)
        or getattr(channel, "requests", None)
        or getattr(channel, "total_outbufs_len", 0)
        for channel in list(server._map.values())
        if channel is not server
    )


def _drain_then_stop(server: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _busy(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _busy(server):
        log.warning("graceful timeout of %s s reached with requests still in flight", timeout)
    # waitress's loop ends cleanly on KeyboardInterrupt (in the main thread).
    os.kill(os.getpid(), signal.SIGINT)


def drain_and_close(servers: list[Any], timeout: float) -> None:
    """Stop accepting on every server, let what is in flight finish (at most ``timeout``
    seconds overall), then close them: ``logistics up``, whose servers run in threads."""
    for server in servers:
        server.del_channel()
        server.socket.close()
    deadline = time.monotonic() + timeout
    while any(_busy(server) for server in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for server in servers:
        server.close()


def serve_until_sigterm(server: Any, graceful_timeout: float) -> None:
    """Run ``server`` (one waitress TcpWSGIServer) until SIGTERM or Ctrl-C."""
    stopping = threading.Event()

    def on_sigterm(_signum: int, _frame: Any) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("SIGTERM: no new connections; finishing requests in flight")
        server.del_channel()  # out of the poll map: nothing more is accepted
        server.socket.close()
        threading.Thread(target=_drain_then_stop, args=(server, graceful_timeout), daemon=True).start()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=graceful_timeout)

"""Counting network round trips between the app and PostgreSQL, at the TCP level.

:class:`RoundTripCounter` is a small TCP proxy in front of the machine's PostgreSQL.
It counts **turns**: a turn starts when the client sends bytes after the server
last spoke (or on a connection's first bytes). A client that waits for an answer
before it sends again makes one turn per statement; a pipeline (or one simple query
holding several statements) is one turn however many messages it carries. BEGIN and
COMMIT are bytes on the wire like any statement, so they count. Every connection
through the proxy is counted (the app's write pool, its read pool, a short
transaction of its own), so nothing a request does escapes the count.

If the server's answer to the first part of a burst arrives while the client is
still writing, the proxy sees two turns where the client waited for none: the count
can be too high, never too low, which is the safe side for a ceiling in a test.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

from sqlalchemy.engine import make_url


class RoundTripCounter:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port: int = self.listener.getsockname()[1]
        self._turns = 0
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def for_url(cls, url: str) -> RoundTripCounter:
        parsed = make_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or 5432)

    def proxied(self, url: str) -> str:
        """``url`` (a database on the target server) reached through this proxy."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    @property
    def turns(self) -> int:
        with self._lock:
            return self._turns

    def reset(self) -> None:
        with self._lock:
            self._turns = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[int]]:
        """``with counter.counting() as found: ...`` -> ``found[0]`` is the turns inside."""
        found = [0]
        self.reset()
        yield found
        found[0] = self.turns

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        server_spoke_last = True  # so a connection's first bytes start a turn
        try:
            while not self._closed:
                readable, _, _ = select.select([client, server], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        if server_spoke_last:
                            # Counted before the bytes go on, so the count is complete
                            # by the time the client can have read any answer to them.
                            with self._lock:
                                self._turns += 1
                            server_spoke_last = False
                        server.sendall(data)
                    else:
                        server_spoke_last = True
                        client.sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

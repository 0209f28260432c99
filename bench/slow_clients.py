"""A normal request's latency while slow clients hold connections open (waitress's limits).

    .venv/bin/python bench/slow_clients.py [--slow 200] [--rounds 7] [--requests 20]
                                           [--path /healthz] [--threads 4] [--timeout 5]
                                           [--no-defaults]

One run on one machine. ``logistics serve inventory`` runs on a free port against a migrated
SQLite database in a temp directory, with the suite's waitress limits
(LOGISTICS_WAITRESS_CONNECTION_LIMIT / _CHANNEL_TIMEOUT / _CLEANUP_INTERVAL at their
defaults). Each round measures ``--requests`` sequential GETs of ``--path`` (a new connection
each, as a client arriving during an attack would open) in two conditions, interleaved and in
alternating order so drift in the machine's load hits both alike:

(A) no other client;
(B) ``--slow`` connections held open, each having sent a request line and part of its headers
    that it never finishes (the slowloris pattern; they cost waitress a connection, not a
    thread).

Reported per condition: the median over rounds of each round's median latency, the range of
those round medians, and B/A (the result). The load average is printed before and after.

Unless ``--no-defaults``, a second server then runs with waitress's own limits (100
connections, 120 s channel timeout, 30 s cleanup) and the same slow clients, and a few
requests are sent with a ``--timeout`` second limit: they are expected to time out, which is
the failure the settings exist for. Nothing asserts; exit status 1 when a request of (A) or
(B) failed (the numbers would not measure what their label says). Servers are stopped and the
temp directory removed at the end, also on errors, Ctrl-C or SIGTERM (exit status 130).
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import http.client
import signal
import socket
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from kit import core
from kit.core import Server
from kit.facts import load_average

#: waitress's own adjustments, which the suite's settings replace.
WAITRESS_DEFAULTS = {
    "LOGISTICS_WAITRESS_CONNECTION_LIMIT": "100",
    "LOGISTICS_WAITRESS_CHANNEL_TIMEOUT": "120",
    "LOGISTICS_WAITRESS_CLEANUP_INTERVAL": "30",
}


@dataclass
class Condition:
    name: str
    round_medians: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.round_medians) if self.round_medians else float("nan")

    @property
    def spread(self) -> str:
        if not self.round_medians:
            return "-"
        return f"{min(self.round_medians):.2f}-{max(self.round_medians):.2f}"


def one_request(port: int, path: str, timeout: float) -> float:
    """Milliseconds from connect to the last byte of a 200; raises on anything else."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
    finally:
        connection.close()
    return (time.perf_counter() - started) * 1000


def hold_slow_clients(stack: ExitStack, port: int, count: int) -> None:
    """``count`` connections that send part of a request's headers and never finish them."""
    for n in range(count):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        sock.sendall(f"GET /healthz?slow={n} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: ".encode())


def measure(condition: Condition, port: int, args: argparse.Namespace, slow: int) -> None:
    with ExitStack() as stack:
        hold_slow_clients(stack, port, slow)
        latencies = []
        for _ in range(args.requests):
            try:
                latencies.append(one_request(port, args.path, args.timeout))
            except (OSError, RuntimeError) as exc:
                condition.failures.append(f"{exc.__class__.__name__}: {exc}")
        if latencies:
            condition.round_medians.append(statistics.median(latencies))


def serve(name: str, env: dict[str, str], threads: int) -> tuple[Server, int]:
    """A ``logistics serve inventory`` to enter (it is started and waited for then) and its port."""
    server = core.web_server(name, "inventory", env, threads=threads)
    assert server.port is not None
    return server, server.port


def with_waitress_defaults(env: dict[str, str], args: argparse.Namespace) -> tuple[int, int, float]:
    """(answered, timed out, seconds spent) for a few requests against waitress's own limits."""
    answered = timed_out = 0
    started = time.monotonic()
    server, port = serve("serve (waitress defaults)", {**env, **WAITRESS_DEFAULTS}, args.threads)
    with server, ExitStack() as stack:
        hold_slow_clients(stack, port, args.slow)
        for _ in range(3):
            try:
                one_request(port, args.path, args.timeout)
                answered += 1
            except (OSError, RuntimeError):
                timed_out += 1
    return answered, timed_out, time.monotonic() - started


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slow", type=int, default=200, help="slow connections held in (B); default 200")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; default 7")
    parser.add_argument(
        "--requests", type=int, default=20, help="requests per condition and round; default 20"
    )
    parser.add_argument("--path", default="/healthz", help="the normal request; default /healthz")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads; default 4")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds before a request fails; default 5"
    )
    parser.add_argument("--no-defaults", action="store_true", help="skip the run with waitress's own limits")
    args = parser.parse_args()
    if min(args.slow, args.rounds, args.requests, args.threads) < 1 or args.timeout <= 0:
        parser.error("--slow, --rounds, --requests, --threads and --timeout must be positive")
    return args


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C: servers are stopped and the temp directory removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    quiet = Condition("(A) no other client")
    slow = Condition(f"(B) {args.slow} slow clients held")
    load_before = load_average()
    defaults: tuple[int, int, float] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
            env = core.service_env(f"sqlite:///{tmp}/inventory.sqlite3", tmp, args.threads)
            core.migrate(env)
            server, port = serve("serve", env, args.threads)
            with server:
                for n in range(args.rounds):
                    pair = ((quiet, 0), (slow, args.slow))
                    for condition, count in pair if n % 2 == 0 else reversed(pair):
                        measure(condition, port, args, count)
            load_after = load_average()
            if not args.no_defaults:
                defaults = with_waitress_defaults(env, args)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temp directory removed", file=sys.stderr)
        return 130

    ratio = slow.median / quiet.median if quiet.median else float("nan")
    print()
    print("Slow clients: latency of a normal request with and without held, never-finished requests")
    print()
    print(f"  cores             {os.cpu_count()}")
    print(f"  load average      {load_before} (before) · {load_after} (after the interleaved rounds)")
    print(f"  request           GET {args.path}, a new connection each, timeout {args.timeout:g} s")
    print(f"  rounds            {args.rounds} x {args.requests} requests per condition, interleaved")
    print(f"  waitress          {args.threads} threads; limits from the LOGISTICS_WAITRESS_* defaults")
    print()
    header = f"{'condition':<34} {'median ms':>10} {'range ms':>14} {'failed':>7}"
    print(header)
    print("-" * len(header))
    for condition in (quiet, slow):
        failed = len(condition.failures)
        print(f"{condition.name:<34} {condition.median:>10.2f} {condition.spread:>14} {failed:>7}")
    print()
    print(f"B/A (median latency with slow clients / without): {ratio:.2f}")
    if defaults is not None:
        answered, timed_out, seconds = defaults
        print(
            f"waitress's own limits (100 connections, 120 s), {args.slow} slow clients: "
            f"{answered} of 3 requests answered, {timed_out} failed within {args.timeout:g} s "
            f"({seconds:.0f} s spent)"
        )
    failures = quiet.failures + slow.failures
    for failure in failures[:5]:
        print(f"!!! {failure}")
    if failures:
        print("!!! some requests of (A)/(B) failed: these numbers are NOT valid")
    print()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

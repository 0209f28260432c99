"""wrk: its installer, its runs (a discarded warm-up, then the measured one), its report parser,
the bare endpoint every HTTP ratio divides by, and the columns of the tables that show them."""

from __future__ import annotations

import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import facts
from .core import BENCH, Server, free_port
from .databases import postgres_version

_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkSettings:
    threads: int
    connections: int
    duration: int
    warmup: int
    backend: str
    pg_url: str

    @property
    def wrk_threads(self) -> int:
        # wrk refuses more threads than connections.
        return min(self.threads, self.connections)


@dataclass(frozen=True)
class WrkResult:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def failed(self) -> bool:
        return self.non_2xx > 0 or any(self.socket_errors.values())


def parse_wrk(name: str, output: str) -> WrkResult:
    """Read wrk's ``--latency`` report; a missing line means wrk did not finish a run."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    percentiles = {p: float(value) * _TO_MS[unit] for p, value, unit in _PERCENTILE.findall(output)}
    if not rps or not total or set(percentiles) != {"50", "99"}:
        raise SystemExit(f"could not parse wrk's output for {name}:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = _SOCKET_ERRORS.search(output)
    counts = [int(count) for count in sockets.groups()] if sockets else [0, 0, 0, 0]
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), counts, strict=True))
    return WrkResult(
        name=name,
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not on PATH: installing it with `apt-get install -y wrk` ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, env=env, stdout=sys.stderr, check=False).returncode != 0:
        print("apt-get install failed: running `apt-get update` and trying again ...", file=sys.stderr)
        subprocess.run(["apt-get", "update"], env=env, stdout=sys.stderr, check=False)
        subprocess.run(install, env=env, stdout=sys.stderr, check=False)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk (apt-get needs root); install it and run again")
    print(f"installed {found}", file=sys.stderr)
    return found


class Wrk:
    def __init__(self, executable: str, settings: WrkSettings) -> None:
        self.executable = executable
        self.settings = settings

    def measure(
        self,
        name: str,
        url: str,
        *,
        headers: tuple[str, ...] = (),
        script: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> WrkResult:
        """A discarded warm-up run, then the measured one, both with the same load."""
        if self.settings.warmup:
            self._run(url, self.settings.warmup, headers, script, env)
        print(f"measuring {name} for {self.settings.duration}s ...", file=sys.stderr)
        return parse_wrk(name, self._run(url, self.settings.duration, headers, script, env))

    def _run(
        self,
        url: str,
        seconds: int,
        headers: tuple[str, ...],
        script: Path | None,
        env: dict[str, str] | None,
    ) -> str:
        argv = [
            self.executable,
            f"--threads={self.settings.wrk_threads}",
            f"--connections={self.settings.connections}",
            f"--duration={seconds}s",
            "--latency",
        ]
        for header in headers:
            argv += ["--header", header]
        if script is not None:
            argv += ["--script", str(script)]
        done = subprocess.run([*argv, url], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def version(self) -> str:
        # `wrk -v` prints its version and exits non-zero.
        done = subprocess.run([self.executable, "-v"], capture_output=True, text=True, check=False)
        first = (done.stdout or done.stderr).strip().splitlines()
        return " ".join(first[0].split()[:2]) if first else "wrk (unknown version)"


def measure_bare(wrk: Wrk, settings: WrkSettings) -> WrkResult:
    """bench/bare_app.py with the same waitress threads, under the same load: the divisor."""
    port = free_port()
    argv = [sys.executable, str(BENCH / "bare_app.py"), f"--port={port}", f"--threads={settings.threads}"]
    url = f"http://127.0.0.1:{port}/ping"
    with Server("bare Pyramid app", argv, ready_url=url):
        return wrk.measure("bare  GET /ping", url)


def machine_facts(settings: WrkSettings, wrk: Wrk) -> list[tuple[str, str]]:
    if settings.backend == "postgres":
        backend = f"postgres ({postgres_version(settings.pg_url)})"
    else:
        backend = f"sqlite ({sqlite3.sqlite_version}, temp file)"
    return [
        *facts.machine(),
        ("software", facts.software(wrk.version(), platform.system())),
        ("backend", backend),
        ("waitress threads", str(settings.threads)),
        (
            "wrk load",
            f"{settings.wrk_threads} threads · {settings.connections} connections · "
            f"{settings.duration}s (after a {settings.warmup}s warm-up) · same for every row",
        ),
    ]


# -- tables ------------------------------------------------------------------------------------


COLUMNS = ("req/s", "p50 ms", "p99 ms", "non-2xx", "sock err")


def header(first: str, width: int, *more: str) -> str:
    """The header of a wrk table: ``first`` (``width`` wide), wrk's columns, then ``more``."""
    return f"{first:<{width}} {COLUMNS[0]:>9} " + " ".join(f"{column:>8}" for column in (*COLUMNS[1:], *more))


def cells(result: WrkResult, ratio: float, ratio_format: str = ".3f") -> str:
    """wrk's columns of one row, then its ratio."""
    return (
        f"{result.requests_per_s:>9.1f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} "
        f"{result.non_2xx:>8} {sum(result.socket_errors.values()):>8} {ratio:>8{ratio_format}}"
    )


def failure(result: WrkResult, label: str = "") -> str:
    """``!!! <label>: N non-2xx of M responses, socket errors: ...``."""
    sockets = ", ".join(f"{kind} {count}" for kind, count in result.socket_errors.items() if count)
    return f"!!! {label or result.name.strip()}: {result.non_2xx} non-2xx of {result.requests} responses" + (
        f", socket errors: {sockets}" if sockets else ""
    )


def failures(
    failed: list[WrkResult],
    width: int,
    notes: list[str] | None = None,
    verdict: str = "these rows measured failures, not the endpoint",
) -> list[str]:
    """The ``!!!`` block under a table, when a row failed (or ``notes`` say a row is suspect)."""
    if not failed and not notes:
        return []
    return [
        "",
        "!" * width,
        *(failure(result) for result in failed),
        *(notes or []),
        f"!!! {verdict}: their numbers are NOT valid",
        "!" * width,
    ]

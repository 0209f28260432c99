"""A real Prometheus (Debian's ``prometheus``) for tests: its own directory, data and port on
loopback, scraping the targets it is given, with the rules it is given; and its HTTP API."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the lock

T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (held together while chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def poll(
    read: Callable[[], T], done: Callable[[T], bool], *, what: str, timeout: float = 60, every: float = 0.25
) -> T:
    """Read until ``done(value)``; fails after ``timeout`` s naming what it waited for and the last
    value read (or the last error raised reading it)."""
    deadline = time.monotonic() + timeout
    last: Any = "nothing read yet"
    while True:
        try:
            value = read()
        except Exception as exc:  # the last error is the state to report
            last = f"{type(exc).__name__}: {exc}"
        else:
            if done(value):
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")
        time.sleep(every)


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Prometheus:
    """``prometheus`` on 127.0.0.1:<port> with ``config`` (a prometheus.yml as a dict) and the
    rule files ``rules`` ({file name: its groups as a dict}), all written into ``directory``."""

    def __init__(
        self, binary: str, directory: Path, port: int, config: dict[str, Any], rules: dict[str, Any]
    ) -> None:
        self.directory, self.port = directory, port
        directory.mkdir(parents=True, exist_ok=True)
        for name, groups in rules.items():
            (directory / name).write_text(yaml.safe_dump(groups, sort_keys=False))
        config = {**config, "rule_files": sorted(rules)}
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = directory / "prometheus.log"
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, "prometheus exited"
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200

        poll(ready, bool, what=f"prometheus ready on :{self.port} ({self.log_tail()})", timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory / "data", ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def query(self, expr: str) -> dict[str, Any]:
        """The instant query's whole answer (``status``, ``data``, ``error``, ``warnings``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            return dict(get_json(url))
        except urllib.error.HTTPError as exc:  # 400/422: the answer names the error
            return dict(json.loads(exc.read() or b"{}") or {"status": "error", "error": str(exc)})

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (resolved ones are no longer listed)."""
        return list(get_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])

    def targets(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"])


@contextlib.contextmanager
def running(prometheus: Prometheus) -> Iterator[Prometheus]:
    try:
        prometheus.start()
        yield prometheus
    finally:
        prometheus.stop()


def find_binary(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))

"""The local cluster (deploy/local/cluster.py) as the benches drive it: up, down, its ports.

bench/scale.py and bench/scaling_sim.py each run a cluster of their own; this is what both
need of it. Subclasses add their own switches (scale.py: nginx's replicas, gunicorn's
processes) or views (scaling_sim.py: the processes' /metrics).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from .core import REPO

LAUNCHER = REPO / "deploy" / "local" / "cluster.py"
#: Held by the cluster tests (tests/helpers/cluster.py) while they run a cluster: a bench that
#: runs one too takes it, so the two never share the machine unknowingly.
LOCK = Path("/tmp/logistics-cluster-tests.lock")


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def cluster_tests_lock(wait: float) -> Iterator[bool]:
    """The cluster tests' lock, waited for up to ``wait`` s; yields whether it is held."""
    try:
        handle = LOCK.open("a")
    except OSError:
        yield False
        return
    with handle:
        deadline, held, announced = time.monotonic() + wait, False, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    print(f"{LOCK} still held after {wait:.0f} s: running without it", file=sys.stderr)
                    break
                if not announced:
                    print(f"waiting for {LOCK} (a cluster test is running) ...", file=sys.stderr)
                    announced = True
                time.sleep(1)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(handle, fcntl.LOCK_UN)


def launcher() -> ModuleType:
    """deploy/local/cluster.py as a module: its Layout is the one description of the ports."""
    spec = importlib.util.spec_from_file_location("logistics_local_cluster", LAUNCHER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LocalCluster:
    """``cluster.py up`` / ``down`` with ``env``; ``directory`` holds supervisord's files."""

    def __init__(self, env: dict[str, str], directory: Path | None) -> None:
        self.module = launcher()
        self.env = env
        self.directory = directory
        self.layout = self.module.Layout(env)
        self.launched = False

    @property
    def front_door(self) -> str:
        return f"http://127.0.0.1:{self.layout.nginx}"

    def launch(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(LAUNCHER), command],
            env=self.env,
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def busy_ports(self) -> list[int]:
        """The cluster's ports that cannot be bound now (cluster.py up probes them the same way)."""
        busy = []
        for port in self.layout.all_ports():
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    busy.append(port)
        return busy

    def wait_ports(self, timeout: float = 120) -> None:
        """A previous run's connections linger in TIME_WAIT on the replicas' ports for a minute
        (gunicorn's sync workers close every connection), and cluster.py's probe binds without
        SO_REUSEADDR: wait for them. A port something listens on is refused at once."""
        busy = self.busy_ports()
        if not busy:
            return
        for port in busy:
            with socket.socket() as client:
                client.settimeout(1)
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    raise SystemExit(f"port {port} is in use (another cluster?): choose another --base-port")
        print(f"ports {busy} are in TIME_WAIT from an earlier run: waiting ...", file=sys.stderr)
        wait_until(lambda: not self.busy_ports(), timeout, f"ports {busy} to be free", interval=1)

    def logs_tail(self, lines: int = 20) -> str:
        if self.directory is None:
            return ""
        out = []
        for path in sorted((self.directory / "logs").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {path.name} ---\n" + "\n".join(tail))
        return "".join(out)

    def up(self) -> float:
        """Start it; the seconds that took."""
        self.wait_ports()
        started = time.monotonic()
        self.launched = True
        done = self.launch("up", timeout=300)
        if done.returncode != 0:
            raise SystemExit(
                f"deploy/local/cluster.py up failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                + self.logs_tail()
            )
        return time.monotonic() - started

    def supervisord_pid(self) -> int | None:
        if self.directory is None:
            return None
        try:
            pid = int((self.directory / "supervisord.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def down(self) -> None:
        """``cluster.py down``; if supervisord survives it, :meth:`kill_survivor`."""
        if not self.launched:
            return
        # An interrupted `up` may have started supervisord without its pid file yet.
        with contextlib.suppress(SystemExit):
            wait_until(lambda: self.supervisord_pid() is not None, 3, "supervisord's pid file")
        if self.supervisord_pid() is None:
            return
        try:
            done = self.launch("down", timeout=180)
            print(done.stdout.strip() or done.stderr.strip(), file=sys.stderr)
        except subprocess.TimeoutExpired:
            print("cluster.py down timed out", file=sys.stderr)
        pid = self.supervisord_pid()
        if pid is not None:
            print(f"supervisord {pid} survived `down`: SIGKILL", file=sys.stderr)
            self.kill_survivor(pid)

    def kill_survivor(self, pid: int) -> None:
        """SIGKILL supervisord's process group (it daemonizes into one of its own), never ours."""
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group != os.getpgrp():
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)

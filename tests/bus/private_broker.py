"""A throwaway RabbitMQ node of the test's own, for fault tests that stop the broker.

The machine's RabbitMQ (``rabbit@localhost`` on 5672/25672) is shared with CI
and other tests and must never be stopped; this starts a *second* node next to
it, with everything of its own:

* node name ``rabbit_test_<random>@localhost`` (registered with the machine's
  epmd, which is only read, never restarted);
* AMQP and Erlang distribution ports picked free on 127.0.0.1, below the
  kernel's ephemeral range so an outgoing connection cannot take one while the
  node is down between a stop and a start;
* data (mnesia), logs, pid file, config, enabled-plugins file (``[].``: no
  management or prometheus listener) and an empty ``rabbitmq-env.conf``
  (so ``/etc/rabbitmq/rabbitmq-env.conf`` does not rename it ``rabbit@...``)
  under a directory the caller owns, normally a pytest ``tmp_path``;
* ``HOME`` pointing there too, holding an Erlang cookie of its own: the CLI
  calls below can only ever reach this node, and nothing is written to the
  real ``$HOME``.

The real scripts (``/usr/lib/rabbitmq/bin``) are run, not the Debian wrappers
in ``/usr/sbin``: as root those ``su rabbitmq``, which could neither read a
pytest tmp dir nor keep the private ``HOME``. The server runs in the
foreground as a child in a session of its own, so stopping it never needs a
search by name: ``rabbitmqctl stop``, else the child's process group.

``stop()`` then ``start()`` (or ``restart()``) reuses the same node name and
mnesia directory, so durable queues and persistent messages survive.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ..services import services_required

#: Where distribution packages keep the real scripts; the ``/usr/sbin`` ones
#: are wrappers that switch to the ``rabbitmq`` user when run as root.
SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin", "/opt/rabbitmq/sbin")

#: The machine node's listeners and the CLI tools' default distribution range
#: (35672-35682): never handed out, even if momentarily free.
_RESERVED_PORTS = {4369, 5671, 5672, 15672, 15692, 25672, *range(35672, 35683)}


class BrokerError(RuntimeError):
    """The private node did not start or stop as asked."""


def find_scripts() -> tuple[Path, Path] | None:
    """``(rabbitmq-server, rabbitmqctl)`` real scripts, or ``None`` when not installed.

    A directory counts only if ``rabbitmq-env`` sits next to the two scripts:
    that is where the real scripts source it from (wrappers have none).
    """
    candidates = [Path(d) for d in SCRIPT_DIRS]
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which("rabbitmq-server", path=search)
    if found:
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        server, ctl = directory / "rabbitmq-server", directory / "rabbitmqctl"
        if (directory / "rabbitmq-env").is_file() and os.access(server, os.X_OK) and os.access(ctl, os.X_OK):
            return server, ctl
    return None


def need_rabbitmq_server() -> tuple[Path, Path]:
    """The scripts; else skip, or fail under ``LOGISTICS_REQUIRE_SERVICES=1`` (like ``need_service``)."""
    scripts = find_scripts()
    if scripts is None:
        message = (
            "rabbitmq-server is not installed (no real scripts in PATH or " + ", ".join(SCRIPT_DIRS) + ")"
        )
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return scripts


def _port_is_free(port: int) -> bool:
    # No SO_REUSEADDR: a port with a listener (on 127.0.0.1 or 0.0.0.0) or with
    # lingering connections is refused, which errs on the safe side.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int, *, low: int = 20000) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 below the ephemeral range."""
    high = max(low + 1000, _ephemeral_floor())
    chosen: list[int] = []
    for _ in range(2000):
        port = random.randrange(low, high)
        if port in _RESERVED_PORTS or port in chosen or not _port_is_free(port):
            continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise BrokerError(f"found no {count} free ports in {low}-{high}")


def _accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
    except OSError:
        return False
    return True


class PrivateBroker:
    """One private RabbitMQ node under ``root``: ``start()``, ``stop()``, ``restart()``, ``url``.

    Always call :meth:`close` (or use it as a context manager): it stops the
    node however the test ended. An ``atexit`` hook is the last resort if the
    interpreter exits with the node still running.
    """

    def __init__(
        self,
        root: Path,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        scripts: tuple[Path, Path] | None = None,
    ) -> None:
        scripts = scripts or find_scripts()
        if scripts is None:
            raise BrokerError("rabbitmq-server is not installed")
        self.server_script, self.ctl_script = scripts
        self.root = Path(root)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.nodename = f"rabbit_test_{secrets.token_hex(4)}@localhost"
        self.port, self.dist_port = free_ports(2)
        self.home = self.root / "home"
        self.mnesia_base = self.root / "mnesia"
        self.log_base = self.root / "log"
        self.config_file = self.root / "rabbitmq.conf"
        self.server_log = self.root / "server.out"
        self._proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self._prepare()

    # -- files and environment ------------------------------------------------------
    def _prepare(self) -> None:
        for directory in (self.home, self.mnesia_base, self.log_base):
            directory.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)  # Erlang refuses a cookie others can read
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("# empty: keep /etc/rabbitmq/rabbitmq-env.conf out\n")
        self._write_config()

    def _write_config(self) -> None:
        self.config_file.write_text(
            "\n".join(
                [
                    f"listeners.tcp.1 = 127.0.0.1:{self.port}",
                    "loopback_users.guest = true",
                    # A nearly full /tmp must not raise the disk alarm and block publishers.
                    "disk_free_limit.absolute = 1MB",
                    "log.console = false",
                    "log.file.level = info",
                    "",
                ]
            )
        )

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            {
                "HOME": str(self.home),
                "RABBITMQ_NODENAME": self.nodename,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.mnesia_base),
                "RABBITMQ_LOG_BASE": str(self.log_base),
                "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
                "RABBITMQ_CONFIG_FILE": str(self.config_file),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),  # absent
                "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                # Only matters if epmd is not running yet and the node starts one.
                "ERL_EPMD_ADDRESS": os.environ.get("ERL_EPMD_ADDRESS", "127.0.0.1"),
            }
        )
        return env

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- CLI ----------------------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <this node> ...`` (never reaches another node: own cookie)."""
        return subprocess.run(
            [str(self.ctl_script), "-n", self.nodename, *args],
            env=self.environ(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            raise BrokerError(f"{self.nodename} is already running")
        if not _port_is_free(self.port):
            raise BrokerError(f"AMQP port {self.port} of {self.nodename} is taken by someone else")
        started = time.monotonic()
        deadline = started + self.startup_timeout
        with self.server_log.open("ab") as out:
            out.write(f"\n==== starting {self.nodename} on {self.port} ====\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                [str(self.server_script)],
                env=self.environ(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stoppable without searching by name
            )
        atexit.register(self._last_resort)
        try:
            self._await_startup(deadline)
        except BaseException:
            self._kill()
            raise
        self.startup_seconds = time.monotonic() - started

    def _await_startup(self, deadline: float) -> None:
        assert self._proc is not None
        last = ""
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise BrokerError(f"{self.nodename} exited with {code} while starting\n{self.diagnostics()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(f"{self.nodename} not up after {self.startup_timeout:.0f}s: {last}")
            if _accepts(self.port):
                # The listener is up; await_startup confirms the node finished booting.
                try:
                    result = self.ctl(
                        "await_startup",
                        "--timeout",
                        str(max(1, int(remaining))),
                        timeout=max(5.0, remaining + 5),
                    )
                except subprocess.TimeoutExpired:
                    raise BrokerError(f"rabbitmqctl await_startup hung for {self.nodename}") from None
                if result.returncode == 0:
                    return
                last = (result.stderr or result.stdout).strip()[-500:]
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the node gracefully (``rabbitmqctl stop``), else terminate its process group."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.ctl("stop", timeout=self.stop_timeout)
            try:
                self._proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        self._proc = None
        atexit.unregister(self._last_resort)
        deadline = time.monotonic() + 10
        while _accepts(self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop however things went; safe to call twice."""
        try:
            self.stop()
        finally:
            self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self._last_resort)
        if proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # our child's own session: only this node's processes
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def _last_resort(self) -> None:
        self._kill()

    def diagnostics(self, lines: int = 40) -> str:
        parts = []
        for path in (self.server_log, self.log_base / f"{self.nodename}.log"):
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def __enter__(self) -> PrivateBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PrivateBroker({self.nodename}, port={self.port}, running={self.running})"

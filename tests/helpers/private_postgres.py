"""A PostgreSQL server of the test's own, for fault tests the machine's server must never see.

Debian's binaries (``/usr/lib/postgresql/<major>/bin``: ``initdb`` and ``postgres``) build a
cluster in a fresh directory under /tmp and run it on a free loopback port in 24000-24999, with
trust authentication, the socket in that directory and the settings the test asks for (a small
``max_connections``, superuser slots kept back only when asked). PostgreSQL refuses to run as
root, so under root the server runs as ``nobody`` (its directory chown'd to it); any other user
runs it as itself. The machine's server (127.0.0.1:5432) is never touched: other data directory, port and
socket. Stopped (fast shutdown, then SIGKILL) and deleted on exit.

    with private_postgres(max_connections=12) as pg:
        pg.url            # postgresql://postgres@127.0.0.1:24xxx
        pg.create_database("inventory")
        pg.log_text()     # the server's log, e.g. for "too many clients already"
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from ..services import services_required

PORTS = range(24000, 25000)
#: The superuser initdb creates (``-U``), whatever OS user runs the server.
SUPERUSER = "postgres"
#: Who runs the server when the tests run as root (initdb and postgres refuse root).
UNPRIVILEGED = "nobody"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and postgres."""
    root = Path("/usr/lib/postgresql")
    majors = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists() and (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return majors[-1] if majors else None


def need_postgres_binaries() -> Path:
    """Debian's PostgreSQL server binaries: skip without them, or fail under
    ``LOGISTICS_REQUIRE_SERVICES=1`` (as tests/services.py's need_service does)."""
    found = find_bindir()
    if found is None:
        message = "a private PostgreSQL needs initdb and postgres (apt-get install postgresql-15)"
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return found


def free_port() -> int:
    """A port in PORTS free on 127.0.0.1 right now (postgres binds it a moment later)."""
    start = int.from_bytes(os.urandom(2), "big") % len(PORTS)
    for n in range(len(PORTS)):
        port = PORTS[(start + n) % len(PORTS)]
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1} on 127.0.0.1")


@dataclass
class PrivatePostgres:
    bindir: Path
    directory: Path
    port: int
    settings: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    run_as: tuple[int, int] | None = field(default=None)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def url(self) -> str:
        """Server URL without a database (append ``/<name>``), as tests/services.PG_URL."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"{self.url}/{database}"

    def _as_owner(self) -> tuple[int | None, int | None, list[int] | None]:
        """(user, group, extra_groups) for subprocess: ``run_as``, or ours (all ``None``)."""
        if self.run_as is None:
            return None, None, None
        return self.run_as[0], self.run_as[1], []

    def init(self) -> None:
        args = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",  # a throwaway cluster: no fsync of the fresh files
        ]
        user, group, extra_groups = self._as_owner()
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=120,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        if done.returncode != 0:
            raise AssertionError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self, timeout: float = 60) -> None:
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            **self.settings,
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for name, value in options.items():
            args += ["-c", f"{name}={value}"]
        # A file, not a pipe: nobody reads a pipe here, and a full one would block the server.
        with self.log_path.open("ab") as log:
            user, group, extra_groups = self._as_owner()
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"private postgres exited ({self.process.returncode}) on :{self.port}:\n{self.log_tail()}"
                )
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise AssertionError(
            f"private postgres not accepting connections on :{self.port} after {timeout:.0f} s"
            f" ({last}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 30) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # "fast" shutdown: clients disconnected, no waiting
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def create_database(self, name: str, owner: str | None = None) -> str:
        """``CREATE DATABASE name``, owned by a new login role ``owner`` (not a superuser, as
        an application's role is) when given; the URL to reach it as that role."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            if owner is not None:
                conn.execute(f'CREATE ROLE "{owner}" LOGIN')
                conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        user = owner or SUPERUSER
        return f"postgresql://{user}@127.0.0.1:{self.port}/{name}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def _unprivileged_ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam(UNPRIVILEGED)
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        gid = user.pw_gid
    return user.pw_uid, gid


@contextlib.contextmanager
def private_postgres(
    max_connections: int = 12, superuser_reserved: int = 0, **settings: str
) -> Iterator[PrivatePostgres]:
    """A running private server (see the module docstring); ``settings`` are more ``-c`` options.

    ``superuser_reserved`` is ``superuser_reserved_connections``: with 0 the superuser counts
    against ``max_connections`` like any application; with 1 a test connecting as the
    superuser still gets in when roles of its own (``create_database(owner=)``) took every
    other slot.
    """
    bindir = need_postgres_binaries()
    run_as = _unprivileged_ids()
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, which nobody cannot traverse.
    directory = Path(tempfile.mkdtemp(prefix="logistics-private-pg-"))
    try:
        if run_as is not None:
            os.chown(directory, *run_as)
        os.chmod(directory, 0o700)
        options = {
            "max_connections": str(max_connections),
            "superuser_reserved_connections": str(superuser_reserved),
            **settings,
        }
        server = None
        for _attempt in range(5):
            server = PrivatePostgres(bindir, directory, free_port(), options, run_as=run_as)
            if not server.data.exists():
                server.init()
            try:
                server.start()
                break
            except AssertionError:
                # Another process took the port between the probe and the bind: try another.
                if "could not bind" not in server.log_text() and "already in use" not in server.log_text():
                    raise
                server.stop()
                server.log_path.unlink(missing_ok=True)
        assert server is not None and server.process is not None and server.process.poll() is None
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

"""An older release's code, found in git history and exported, run against a newer schema.

A rolling deploy (and a rollback) runs the previous image on the schema the new
release migrated: ``previous_release`` finds, per service, the newest commit whose
migration head is the one before the current head, ``export`` writes that
commit's ``shared/`` and ``services/`` into a directory (``git archive``; nothing
is checked out in the working tree), and ``OldApp`` runs that code's web process
with its trees first on ``PYTHONPATH`` (the installed distributions are editable
finders appended to ``sys.meta_path``, so ``sys.path`` wins), reporting the files
it imported so a test can prove which code answered.

History must be complete: CI runs on a fresh ``git clone``; a shallow clone or a
tarball without ``.git`` is an error (``HistoryUnavailable``), never a skip.
"""

from __future__ import annotations

import ast
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("inventory", "shipping", "support")


class HistoryUnavailable(RuntimeError):
    """The repository's history cannot answer which release came before."""


def git(*args: str, repo: Path = REPO) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise HistoryUnavailable(f"git cannot run ({exc})") from None
    if done.returncode != 0:
        raise HistoryUnavailable(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def require_full_history(repo: Path = REPO) -> None:
    if git("rev-parse", "--is-inside-work-tree", repo=repo).strip() != "true":
        raise HistoryUnavailable(f"{repo} is not a git work tree")
    if git("rev-parse", "--is-shallow-repository", repo=repo).strip() == "true":
        raise HistoryUnavailable(
            f"{repo} is a shallow clone: the previous release's code is not in it "
            "(clone without --depth, or run `git fetch --unshallow`)"
        )


def versions_dir(service: str) -> str:
    """The service's Alembic versions directory, relative to the repository root."""
    return f"services/{service}/{service}/migrations/versions"


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: tuple[str, ...]
    path: str


def parse_revision(source: str, path: str) -> Revision | None:
    """``revision`` and ``down_revision`` from a migration's module-level assignments (ast)."""
    values: dict[str, Any] = {}
    for node in ast.parse(source, filename=path).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(value)
    if "revision" not in values:
        return None
    down = values.get("down_revision")
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    return Revision(str(values["revision"]), downs, path)


def heads(revisions: dict[str, Revision]) -> set[str]:
    pointed = {down for rev in revisions.values() for down in rev.down_revision}
    return set(revisions) - pointed


def _collect(files: dict[str, str]) -> dict[str, Revision]:
    found: dict[str, Revision] = {}
    for path, source in files.items():
        rev = parse_revision(source, path)
        if rev is not None:
            found[rev.revision] = rev
    return found


def revisions_in_tree(service: str, root: Path = REPO) -> dict[str, Revision]:
    directory = root / versions_dir(service)
    return _collect(
        {
            str(p.relative_to(root)): p.read_text()
            for p in sorted(directory.glob("*.py"))
            if p.name != "__init__.py"
        }
    )


def revisions_at(commit: str, service: str) -> dict[str, Revision]:
    listing = git("ls-tree", "-r", "--name-only", commit, "--", versions_dir(service)).split()
    paths = [p for p in listing if p.endswith(".py") and not p.endswith("/__init__.py")]
    return _collect({path: git("show", f"{commit}:{path}") for path in paths})


@dataclass(frozen=True)
class Release:
    """The newest commit whose head for ``service`` is ``head``, the one before ``current_head``."""

    service: str
    commit: str
    head: str
    current_head: str


def previous_release(service: str) -> Release:
    require_full_history()
    current = revisions_in_tree(service)
    current_heads = heads(current)
    if len(current_heads) != 1:
        raise HistoryUnavailable(
            f"{service}: the working tree has {len(current_heads)} heads {current_heads}"
        )
    (current_head,) = current_heads
    downs = current[current_head].down_revision
    if len(downs) != 1:
        raise HistoryUnavailable(f"{service}: head {current_head} revises {downs}, not one revision")
    (target,) = downs
    if heads(revisions_at("HEAD", service)) == {target}:  # the newest migration is not committed yet
        return Release(service, git("rev-parse", "HEAD").strip(), target, current_head)
    # Commits that changed the versions directory, newest first, along main's first parents:
    # between one of them and the next newer one, the directory is as that commit left it, so
    # the newest commit at ``target`` is the first parent of the commit that moved past it.
    touching = git("rev-list", "--first-parent", "HEAD", "--", versions_dir(service)).split()
    newer: str | None = None
    for commit in touching:
        if heads(revisions_at(commit, service)) == {target}:
            if newer is None:
                break
            found = git("rev-parse", f"{newer}^1").strip()
            assert heads(revisions_at(found, service)) == {target}, (service, found)
            return Release(service, found, target, current_head)
        newer = commit
    raise HistoryUnavailable(
        f"{service}: no commit on HEAD's first-parent history has migration head {target} "
        f"(the revision before the current head {current_head}); is the history complete?"
    )


def export(commit: str, dest: Path) -> Path:
    """``shared/`` and ``services/`` of ``commit`` under ``dest`` (all services: discovery
    loads every installed service's entry point, which must resolve to the same release)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "--", "shared", "services"],
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise HistoryUnavailable(f"git archive {commit} failed: {exc.stderr.decode().strip()}") from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def python_path(tree: Path) -> str:
    return os.pathsep.join([str(tree / "shared"), *(str(tree / "services" / svc) for svc in SERVICES)])


def clean_environ(**extra: str) -> dict[str, str]:
    """The test process's environment without its LOGISTICS_*/PYTHONPATH, plus ``extra``."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LOGISTICS_") and k not in ("PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR")
    }
    return {**keep, **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Runs in the old tree's interpreter: says what it imported, then serves through the old CLI.
_BOOT = """
import importlib, importlib.resources, json, sys
service, port = sys.argv[1], sys.argv[2]
import logistics_shared.cli as cli
module = importlib.import_module(service)
spec = importlib.import_module(service + ".service").SERVICE
package, _, sub = spec.migrations.partition(":")
print(json.dumps({
    "logistics_shared": cli.__file__,
    "service": module.__file__,
    "migrations": str(importlib.resources.files(package).joinpath(sub)),
    "loaded": {name: getattr(m, "__file__", None) for name, m in sorted(sys.modules.items())
               if name.split(".")[0] in ("logistics_shared", "inventory", "shipping", "support")},
}), flush=True)
sys.argv = ["logistics", "serve", service, "--server", "waitress", "--host", "127.0.0.1", "--port", port]
cli.main()
"""


_CLI = """
import os, sys
import logistics_shared.cli as cli
assert cli.__file__.startswith(os.environ["PYTHONPATH"].split(os.pathsep)[0]), cli.__file__
sys.argv = ["logistics", *sys.argv[1:]]
cli.main()
"""


@dataclass
class Response:
    status: int
    #: Lower-cased names.
    headers: dict[str, str]
    body: Any


@dataclass
class OldApp:
    """The old tree's web process for one service, on ``database_url``."""

    tree: Path
    service: str
    database_url: str
    jwt_secret: str
    workdir: Path
    port: int = field(default_factory=free_port)
    #: A release with secrets stored encrypted (webhooks, carriers) needs a key to start on
    #: PostgreSQL; an older one ignores the variable.
    secrets_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    proc: subprocess.Popen[bytes] | None = None
    imported: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _log(self, name: str) -> Path:
        return self.workdir / f"{self.service}.{name}"

    def output(self) -> str:
        return "\n".join(
            f"--- {name}:\n{self._log(name).read_text(errors='replace')[-3000:]}"
            for name in ("stdout", "stderr")
            if self._log(name).exists()
        )

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_until_serving(timeout)

    def _environ(self) -> dict[str, str]:
        return clean_environ(
            PYTHONPATH=python_path(self.tree),
            PYTHONDONTWRITEBYTECODE="1",
            **{
                f"LOGISTICS_{self.service.upper()}_DATABASE_URL": self.database_url,
                "LOGISTICS_JWT_SECRET": self.jwt_secret,
                "LOGISTICS_SECRETS_KEY": self.secrets_key,
                "LOGISTICS_VAR_DIR": str(self.workdir / "var"),
                "LOGISTICS_LOG_LEVEL": "WARNING",
            },
        )

    def has_command(self, name: str) -> bool:
        """Whether the old release's CLI has ``name`` (e.g. ``wait-for-schema``, added later)."""
        return f'"{name}"' in (self.tree / "shared" / "logistics_shared" / "cli.py").read_text()

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """The old release's ``logistics`` command, on the same database and settings."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [sys.executable, "-c", _CLI, *args],
            cwd=self.workdir,
            env=self._environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def launch(self) -> None:
        """Start the process; ``wait_until_serving`` waits for it (meanwhile, migrate)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self._log("stdout").open("wb") as out, self._log("stderr").open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, self.service, str(self.port)],
                cwd=self.workdir,  # not the repository: '' on sys.path must not find today's code
                env=self._environ(),
                stdout=out,
                stderr=err,
            )

    def wait_until_serving(self, timeout: float = 30.0) -> None:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the old {self.service} exited {self.proc.returncode}\n{self.output()}")
            try:
                if self.request("GET", "/healthz").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the old {self.service} did not answer /healthz in {timeout}s\n{self.output()}"
                )
            time.sleep(0.1)
        first = self._log("stdout").read_text().splitlines()
        assert first, f"the old {self.service} printed no import report\n{self.output()}"
        self.imported = json.loads(first[0])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=dict(headers or {})
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                status, raw, got = (
                    answer.status,
                    answer.read(),
                    {k.lower(): v for k, v in answer.headers.items()},
                )
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), {k.lower(): v for k, v in error.headers.items()}
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Response(status, got, parsed)

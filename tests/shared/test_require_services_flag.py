"""LOGISTICS_REQUIRE_SERVICES=1 turns a would-be skip into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..services import need_service

PROBE = """
from tests.services import need_service

def test_needs_a_missing_broker():
    need_service("Imaginary broker", "127.0.0.1", 9)  # discard port: nothing listens
"""


def _run_probe(tmp_path: Path, require: str) -> subprocess.CompletedProcess:
    root = Path(__file__).parents[2]
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "LOGISTICS_REQUIRE_SERVICES": require, "PYTHONPATH": str(root)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(probe),
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(("flag", "outcome", "code"), [("1", "1 failed", 1), ("", "1 skipped", 0)])
def test_missing_service_fails_only_under_the_flag(tmp_path, flag, outcome, code):
    result = _run_probe(tmp_path, flag)
    assert outcome in result.stdout, result.stdout + result.stderr
    assert result.returncode == code


def test_reachable_service_passes():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        need_service("loopback listener", "127.0.0.1", server.getsockname()[1])

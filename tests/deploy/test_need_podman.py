"""need_podman() skips without podman (or a tool it needs), and fails instead under
LOGISTICS_REQUIRE_SERVICES=1, as need_service() does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
from tests.services import need_podman

def test_needs_a_missing_tool():
    need_podman("no-such-tool-for-images")
"""


@pytest.mark.parametrize(("flag", "outcome", "code"), [("1", "1 failed", 1), ("", "1 skipped", 0)])
def test_a_missing_tool_fails_only_under_the_flag(tmp_path: Path, flag: str, outcome: str, code: int) -> None:
    root = Path(__file__).parents[2]
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "LOGISTICS_REQUIRE_SERVICES": flag, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist"]
    result = subprocess.run(
        [*command, str(probe), "--rootdir", str(tmp_path), "-c", os.devnull],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "no-such-tool-for-images not installed" in result.stdout, result.stdout
    assert result.returncode == code

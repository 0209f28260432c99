"""bench/webhooks.py end to end with tiny numbers: the receivers, both senders and the figures.

A few dozen deliveries to a few endpoints with short delays, one round: every delivery is
recorded delivered by both senders, the receivers verified signatures and saw none twice,
the report has its table and goal lines, and the bench's database is gone afterwards. The
figures themselves are not looked at (a run this small measures start-up, not sending)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.services import PG_URL, need_postgres

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_quick_run_delivers_everything_and_drops_its_database() -> None:
    need_postgres()
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "webhooks.py"),
            "--quick",
            "--deliveries=60",
            "--baseline-deliveries=20",
            "--endpoints=6",
            "--delay-ms=20,60",
            f"--pg-url={PG_URL}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "PROBLEM" not in report
    assert re.search(r"^\(A\) asyncio Dispatcher +60 ", done.stdout, re.MULTILINE), report
    assert re.search(r"^\(B\) requests \+ ThreadPoolExecutor +20 ", done.stdout, re.MULTILINE), report
    assert "round 1 asyncio: 60/60 delivered" in done.stdout
    assert "round 1 threads: 20/20 delivered" in done.stdout
    verified = [int(n) for n in re.findall(r"(\d+) signatures verified, 0 bad, 0 repeated", done.stdout)]
    assert len(verified) == 2 and all(verified), report
    assert "(A)/(B) deliveries/s, per round:" in done.stdout
    assert "(B)/(A) peak RSS, per round:" in done.stdout
    assert "load average at the end:" in done.stdout
    dropped = re.search(r"dropped database (whbench_\d+)", done.stderr)
    assert dropped, report
    with psycopg.connect(f"{PG_URL.rstrip('/')}/postgres") as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dropped[1],)).fetchone()
    assert left is None

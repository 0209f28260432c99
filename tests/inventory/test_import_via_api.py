"""``logistics inventory import ... --via-api URL`` against a real ``logistics up``.

The CLI runs as a subprocess with stdout and stderr on pipes (no terminal), so its
progress comes as lines; the service's in-process worker applies the upload.
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ..embedded import LOGISTICS, Up, call, logistics_up

pytestmark = pytest.mark.e2e

ITEM_HEADER = "sku,name,unit_weight_g,length_mm,width_mm,height_mm,reorder_point"
ADDRESS = {"name": "x", "line1": "y", "city": "z", "country": "NL"}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Up:
    with logistics_up(tmp_path_factory.mktemp("via-api"), import_poll_seconds="0.2") as running:
        yield running


def run(up: Up, *args: str | Path, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOGISTICS, "inventory", "import", *map(str, args), "--via-api", up.url("inventory")],
        env={**up.env, "LOGISTICS_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_items_then_counts_uploaded_and_followed_with_progress_lines(up: Up, tmp_path: Path) -> None:
    admin = up.token("--role", "admin")
    status, _ = call(
        "POST",
        f"{up.url('inventory')}/v1/warehouses",
        admin,
        {"code": "AMS", "name": "A", "address": ADDRESS},
    )
    assert status == 201
    rows = [f"VIA-{i:04d},Item {i},100,10,10,10,1" for i in range(300)]
    items = tmp_path / "items.csv"
    items.write_text(
        "\n".join([ITEM_HEADER, *rows, "VIA-0007,Again,1,1,1,1,1", "bad sku,x,1,1,1,1,1"]) + "\n"
    )
    report = tmp_path / "errors.csv"
    res = run(up, "items", items, "--progress-interval", "0.2", "--errors-csv", report, token=admin)
    assert res.returncode == 1, res.stderr  # two bad rows, the rest applied
    lines = res.stderr.splitlines()
    assert lines[0].startswith(f"Uploaded {items} as import ") and "(302 row(s))" in lines[0]
    progress = [line for line in lines if line.startswith("Importing items: ")]
    assert progress, res.stderr
    assert (
        progress[-1].startswith("Importing items: 302/302 rows (100%), 2 failed")
        and "[succeeded]" in progress[-1]
    )
    assert "items: 302 row(s) read: 300 created, 0 updated, 0 unchanged, 2 failed." in res.stdout
    assert "VIA-0007" in res.stdout and "already on line 9" in res.stdout
    with report.open(newline="") as handle:
        bad = list(csv.DictReader(handle))
    assert [(r["line"], r["column"], r["value"]) for r in bad] == [
        ("302", "sku", "VIA-0007"),
        ("303", "sku", "bad sku"),
    ]

    counts = tmp_path / "counts.csv"
    counts.write_text("warehouse,sku,counted\n" + "".join(f"AMS,VIA-{i:04d},{i + 1}\n" for i in range(50)))
    staff = up.token("--role", "warehouse_staff", "--warehouse", "AMS")
    res = run(up, "stock", counts, "--progress-interval", "0", token=staff)
    assert res.returncode == 0, res.stderr
    assert "stock: 50 row(s) read: 50 adjusted, 0 no change, 0 failed." in res.stdout
    request = urllib.request.Request(
        f"{up.url('inventory')}/v1/stock?warehouse=AMS&limit=200",
        headers={"Authorization": f"Bearer {admin}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        levels = {lvl["sku"]: lvl["on_hand"] for lvl in json.loads(response.read())["items"]}
    assert levels["VIA-0000"] == 1 and levels["VIA-0049"] == 50


def test_refusals_are_usage_errors(up: Up, tmp_path: Path) -> None:
    staff = up.token("--role", "warehouse_staff", "--warehouse", "AMS")
    items = tmp_path / "items.csv"
    items.write_text(ITEM_HEADER + "\nNOPE-1,x,1,1,1,1,1\n")
    res = run(up, "items", items, token=staff)
    assert res.returncode == 2 and "Forbidden: Only admins import items." in res.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,title\nA,B\n")
    res = run(up, "items", bad, token=up.token("--role", "admin"))
    assert res.returncode == 2 and "/file: The file cannot be imported: bad header" in res.stderr
    res = run(up, "items", items, "--dry-run", token=staff)
    assert res.returncode == 2 and "--dry-run" in res.stderr
    res = subprocess.run(
        [LOGISTICS, "inventory", "import", "items", str(items), "--via-api", "http://127.0.0.1:9"],
        env={**up.env, "LOGISTICS_TOKEN": staff},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 3 and "cannot reach http://127.0.0.1:9" in res.stderr


def test_an_idempotency_key_on_the_embedded_sqlite_service(up: Up) -> None:
    # SQLite takes its write lock at BEGIN: the key's claim must come before the request's
    # own transaction, or the request waits on itself (it did: 30 s, then an error).
    admin = up.token("--role", "admin")
    call(
        "POST",
        f"{up.url('inventory')}/v1/warehouses",
        admin,
        {"code": "IDK", "name": "I", "address": ADDRESS},
    )
    staff = up.token("--role", "warehouse_staff", "--warehouse", "IDK")
    body = b"warehouse,sku,counted\nIDK,VIA-0001,7\n"
    answers = []
    for _ in range(2):
        request = urllib.request.Request(
            f"{up.url('inventory')}/v1/imports?kind=stock",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {staff}",
                "Content-Type": "text/csv",
                "Idempotency-Key": "k-1",
            },
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=20) as response:
            answers.append(
                (
                    response.status,
                    json.loads(response.read())["id"],
                    response.headers.get("Idempotent-Replayed"),
                )
            )
        assert time.monotonic() - started < 10
    assert answers[0][:2] == answers[1][:2] and answers[0][0] == 202
    assert answers[1][2] == "true"

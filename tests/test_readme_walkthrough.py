"""The README's walk-through runs as written (end to end, on ``logistics up --demo``).

The shell between ``<!-- walkthrough:start -->`` and ``<!-- walkthrough:end -->`` is run
with ``bash -euo pipefail``; only its three base URLs are pointed at this run's free ports.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .embedded import LOGISTICS, PORTS, call, logistics_up

# Real processes end to end.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]
BLOCK = re.compile(r"<!-- walkthrough:start -->(.*?)<!-- walkthrough:end -->", re.S)
FENCE = re.compile(r"^```(?:sh|bash)\n(.*?)^```$", re.S | re.M)


def walkthrough() -> str:
    sections = BLOCK.findall((ROOT / "README.md").read_text())
    assert sections, "README.md has no <!-- walkthrough:start --> ... <!-- walkthrough:end --> section"
    scripts = [code for section in sections for code in FENCE.findall(section)]
    assert scripts, "the walk-through section has no ```sh block"
    return "\n".join(scripts)


def test_the_walkthrough_follows_a_shipment_end_to_end(tmp_path):
    script = walkthrough()
    for port in PORTS.values():
        assert script.count(f"http://localhost:{port}") == 1, f"the block defines localhost:{port} once"
    # It calls .venv/bin/logistics from the repository root; here it runs in tmp_path (the label it
    # downloads lands there too), with this interpreter's logistics in the same place.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "logistics").symlink_to(LOGISTICS)

    with logistics_up(tmp_path, demo=True) as up:
        for service, port in PORTS.items():
            script = script.replace(f"http://localhost:{port}", up.url(service))
        (tmp_path / "walkthrough.sh").write_text(script)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "walkthrough.sh"],
            cwd=tmp_path,
            env={**up.env, "TMPDIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = result.stdout
        assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]

        token = up.token("--role", "admin")
        ship, sup = up.url("shipping"), up.url("support")
        listed = call("GET", f"{ship}/v1/shipments?warehouse=AMS&limit=200", token)[1]["items"]
        (walk,) = [s for s in listed if s["reference"].startswith("WALK-")]  # WALK-<the run's time>
        shipment = call("GET", f"{ship}/v1/shipments/{walk['id']}", token)[1]
        assert shipment["status"] == "delivered"
        assert [t["status"] for t in shipment["tracking"]] == ["in_transit", "out_for_delivery", "delivered"]
        number = shipment["label"]["tracking_number"]
        # What the block printed: the id, the ready shipment, the label's number and PDF, the statuses.
        lines = out.splitlines()
        assert walk["id"] in lines and number in lines
        assert "ready" in lines and lines.count("delivered") >= 2
        assert any(line.startswith("%PDF-") for line in lines)
        (label,) = tmp_path.glob("tmp.*.pdf")  # mktemp honours TMPDIR
        assert label.read_bytes().startswith(b"%PDF-")

        # Support followed it and holds the walk-through's ticket, answered.
        view = call("GET", f"{sup}/v1/shipments/{walk['id']}", token)[1]
        assert view["status"] == "delivered" and view["tracking_number"] == number
        (ticket,) = call("GET", f"{sup}/v1/tickets?shipment_id={walk['id']}", token)[1]["items"]
        assert ticket["subject"] == "Delivered, but where?" and ticket["first_responded_at"] is not None
        # And step 10 showed the demo's exception with the ticket support opened by itself.
        (exception,) = call("GET", f"{sup}/v1/shipments?reference=DEMO-1004", token)[1]["items"]
        assert exception["status"] == "exception" and exception["tickets"]
        assert lines[-1].count(exception["tickets"][0]["id"]) == 1

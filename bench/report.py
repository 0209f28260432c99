"""``make bench``: run the benchmarks, then write a Markdown report with PNG plots.

    .venv/bin/python bench/report.py [--quick] [--only reads,instructions,writes,bus,import,webhooks]

Each bench runs as its own process, as a person would run it, with ``LOGISTICS_BENCH_RESULTS``
pointing at one JSON-lines file where it appends its headline figures (bench/kit/results.py);
its printed report is kept beside them. Then ``var/bench/<UTC stamp>/`` holds:

- ``report.md``: the machine, the load before and after, a summary table of every figure
  against its goal, the plots, and each bench's own report in full;
- ``reads.png`` (hot reads as a ratio to limit (b), with ranges), ``latency.png`` (p50/p99 of
  the hot reads and of the bus), ``bus.png`` (pipeline rates against raw kombu), ``import.png``
  (rows/s per phase), ``instructions.png`` (limit (b) / ours in instructions per request);
  bus.py's pipeline divided by celery_baseline.py's rate is one more figure of the table;
- ``<bench>.txt`` and ``results.jsonl``: what the plots were drawn from.

A bench that fails is reported as failed (its exit status and the tail of its output) and the
others still run; the exit status is 1 then. ``var/bench/latest`` links to the newest report.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit import facts
from kit.core import BENCH, REPO
from kit.results import ENV

#: bench -> (its arguments for a full run, for --quick): quick keeps every A/B round structure
#: but shortens each measured run, for a look at the machinery, not for figures to quote.
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "reads": (["--rounds=3", "--duration=5"], ["--rounds=2", "--duration=2"]),
    "instructions": (["--n1=10", "--n2=40"], ["--n1=5", "--n2=15", "--endpoints=stock,item"]),
    "writes": (["--rounds=3", "--duration=5"], ["--rounds=2", "--duration=2"]),
    "bus": ([], ["--messages=1000", "--latency-seconds=3"]),
    "import": ([], ["--rows=2000", "--rounds=1", "--skip-saga"]),
    "celery_baseline": ([], ["--messages=1000", "--rounds=1"]),
    "webhooks": ([], ["--quick"]),
}
PIPELINE = "(c) PIPELINE: outbox insert -> handler commit"


def derived(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Figures across benches of the same report: our bus pipeline / Celery end to end."""
    pipeline = [r for r in records if r["bench"] == "bus" and r["figure"] == PIPELINE]
    celery = [r for r in records if r["bench"] == "celery"]
    if not pipeline or not celery:
        return []
    ratio = pipeline[0]["value"] / celery[0]["value"]
    return [
        {
            **celery[0],
            "bench": "bus",
            "figure": "pipeline / Celery end to end",
            "value": ratio,
            "unit": "ratio",
            "goal": 5.0,
            "load": max(pipeline[0]["load"], celery[0]["load"]),
        }
        | {"low": ratio, "high": ratio}
    ]


@dataclass
class Ran:
    bench: str
    argv: list[str]
    status: int
    seconds: float
    output: str


def run_bench(name: str, args: list[str], out_dir: Path, results_file: Path) -> Ran:
    argv = [sys.executable, str(BENCH / f"{name}.py"), *args]
    print(f"== {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, ENV: str(results_file)},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    (out_dir / f"{name}.txt").write_text(
        done.stdout + ("\n--- stderr ---\n" + done.stderr if done.returncode else "")
    )
    print(f"   exit {done.returncode} after {seconds:.0f} s", file=sys.stderr, flush=True)
    return Ran(
        name,
        argv,
        done.returncode,
        seconds,
        done.stdout if done.returncode == 0 else done.stdout + done.stderr[-3000:],
    )


def load_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _of(records: Iterable[dict[str, Any]], bench: str) -> list[dict[str, Any]]:
    return [r for r in records if r["bench"] == bench]


def plots(records: list[dict[str, Any]], out_dir: Path) -> list[str]:
    """The PNGs that the results allow, each named in the returned list."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    made = []

    def bars(name: str, rows: list[dict[str, Any]], title: str, ylabel: str, goal_label: str) -> None:
        if not rows:
            return
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [r["figure"] for r in rows]
        values = [r["value"] for r in rows]
        low = [r["value"] - r.get("low", r["value"]) for r in rows]
        high = [r.get("high", r["value"]) - r["value"] for r in rows]
        ax.bar(range(len(rows)), values, yerr=[low, high], capsize=4, color="#4477aa")
        goals = [r.get("goal") for r in rows]
        for i, goal in enumerate(goals):
            if goal is not None:
                ax.hlines(
                    goal,
                    i - 0.4,
                    i + 0.4,
                    colors="#cc3311",
                    linestyles="--",
                    label=goal_label if i == 0 else None,
                )
        ax.set_xticks(range(len(rows)), labels, rotation=20, ha="right", fontsize=8)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 50:
            ax.set_yscale("log")  # row-by-row and raw COPY differ by orders of magnitude
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if any(goal is not None for goal in goals):
            ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png", dpi=110)
        plt.close(fig)
        made.append(name)

    bars("reads", _of(records, "reads"), "Hot reads: ours / limit (b), median and range", "ratio", "goal")
    bars(
        "instructions",
        _of(records, "instructions"),
        "Instructions: limit (b) / ours per request",
        "ratio",
        "goal",
    )
    rates = [r for r in _of(records, "bus") if r["unit"] == "msg/s"]
    bars("bus", rates, "Bus: messages per second", "msg/s", "goal")
    imports = [r for r in _of(records, "import") if r["unit"] == "rows/s"]
    bars("import", imports, "Bulk import: rows per second", "rows/s", "goal (set-based)")
    latency = [
        {
            **r,
            "figure": f"{r['figure']} p{q}",
            "value": r[f"p{q}_ms"],
            "low": r[f"p{q}_ms"],
            "high": r[f"p{q}_ms"],
        }
        for r in _of(records, "reads")
        for q in (50, 99)
    ] + [{**r, "goal": r.get("goal")} for r in _of(records, "bus") if r["unit"] == "ms"]
    bars("latency", latency, "Latency (ms): hot reads under wrk, bus at a steady rate", "ms", "goal")
    return made


def _met(record: dict[str, Any]) -> str:
    goal = record.get("goal")
    if goal is None:
        return ""
    # A latency or a duration is met below its goal, a rate or a ratio above it.
    met = record["value"] <= goal if record["unit"] in ("ms", "s") else record["value"] >= goal
    return "met" if met else "not met"


def markdown(
    ran: list[Ran], records: list[dict[str, Any]], images: list[str], before: str, after: str
) -> str:
    lines = [
        f"# Benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"- cores: {facts.cores()}",
        f"- load average before: {before}; after: {after}",
        f"- {facts.software()}",
        "- reproduce: `make bench` (or `.venv/bin/python bench/report.py`); each bench's command is below",
        "",
    ]
    warnings = [w for w in (facts.load_warning("at the end"),) if w]
    lines += [f"> {w}" for w in warnings] + ([""] if warnings else [])
    lines += [
        "| bench | figure | value | unit | range | goal | | load |",
        "|---|---|---:|---|---|---:|---|---:|",
    ]
    for r in records:
        spread = f"{r['low']:.3g}-{r['high']:.3g}" if "low" in r and "high" in r else ""
        goal = "" if r.get("goal") is None else f"{r['goal']:g}"
        cells = (
            r["bench"],
            r["figure"],
            f"{r['value']:.3g}",
            r["unit"],
            spread,
            goal,
            _met(r),
            f"{r['load']:.2f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"![{name}]({name}.png)" for name in images]
    for item in ran:
        lines += [
            "",
            f"## {item.bench} — exit {item.status}, {item.seconds:.0f} s",
            "",
            f"`{' '.join(Path(a).name if i < 2 else a for i, a in enumerate(item.argv))}`",
            "",
            "```",
            item.output.rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs: a check of the machinery, not figures"
    )
    parser.add_argument("--only", default=",".join(BENCHES), help="comma list of: " + ", ".join(BENCHES))
    parser.add_argument("--out", default=str(REPO / "var" / "bench"), help="parent of the report folder")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if not chosen or set(chosen) - set(BENCHES):
        parser.error(f"--only: a comma list of {', '.join(BENCHES)}")
    parent = Path(args.out)
    out_dir = parent / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir.mkdir(parents=True)
    results_file = out_dir / "results.jsonl"
    before = facts.load_average()
    ran = [run_bench(name, BENCHES[name][1 if args.quick else 0], out_dir, results_file) for name in chosen]
    records = load_results(results_file)
    records += derived(records)
    images = plots(records, out_dir)
    (out_dir / "report.md").write_text(markdown(ran, records, images, before, facts.load_average()))
    latest = parent / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out_dir.name)
    print(f"report: {out_dir / 'report.md'}")
    return 1 if any(item.status for item in ran) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Celery end to end on the same broker and database: the baseline issue 12 holds the bus to.

    .venv/bin/python bench/celery_baseline.py [--messages 3000] [--rounds 3] [--concurrency 2]

Celery runs in a virtualenv of its own (``var/bench/celery-venv``, made on first use with
``pip install celery==CELERY psycopg[binary]``), so neither its kombu nor anything else it pulls
in touches the project's. One task does one INSERT (autocommit, one connection per worker
process), with the settings that make Celery as safe as our bus: ``task_acks_late`` (ack
after the task ran), ``confirm_publish`` (the producer waits for the broker's confirm), JSON.
Each round: a prefork worker (``--concurrency``) consumes a queue of its own; the producer
publishes ``--messages`` tasks one by one; the clock runs from the first publish until the
database holds every row. The table gives each round's events/s and the median; ``make
bench`` divides bus.py's pipeline by it (the aim: 5x). The queue is deleted and the database
dropped afterwards.
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import psycopg
from kit import databases, results
from kit.core import BROKER_URL, PG_URL, REPO, stoppable_main
from kit.facts import lines as fact_lines
from kit.facts import load_average, machine

CELERY = "5.7.0"
PSYCOPG = "3.3.9"  # the project's locked version
VENV = REPO / "var" / "bench" / "celery-venv"

TASKS = """
import os

import psycopg
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_BROKER"])
app.conf.update(
    task_acks_late=True,
    broker_transport_options={"confirm_publish": True},
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=os.environ["BENCH_QUEUE"],
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
)
_conn = None


@app.task(name="bench.insert")
def insert(n):
    global _conn
    if _conn is None:
        _conn = psycopg.connect(os.environ["BENCH_DB"], autocommit=True)
    _conn.execute("INSERT INTO applied (n) VALUES (%s)", (n,))
"""

PRODUCE = """
import json, os, sys, time
import psycopg
from tasks import app, insert

count = int(sys.argv[1])
with psycopg.connect(os.environ["BENCH_DB"], autocommit=True) as conn:
    started = time.perf_counter()
    for n in range(count):
        insert.apply_async((n,))
    published = time.perf_counter() - started
    deadline = time.monotonic() + 300
    while conn.execute("SELECT count(*) FROM applied").fetchone()[0] < count:
        if time.monotonic() > deadline:
            sys.exit("celery did not apply every task within 300 s")
        time.sleep(0.005)
    print(json.dumps({"seconds": time.perf_counter() - started, "published": published}))
"""


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    marker = VENV / f".installed-{CELERY}"
    if not marker.exists():
        print(f"making {VENV} with celery {CELERY} (first run only) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"celery=={CELERY}",
                f"psycopg[binary]=={PSYCOPG}",
            ],
            check=True,
        )
        marker.touch()
    return python


def _delete_queue(queue: str) -> None:
    from kit.broker import broker

    with broker(BROKER_URL) as conn:
        channel = conn.channel()
        channel.queue_delete(queue)


def one_round(python: Path, work: Path, db_url: str, count: int, concurrency: int) -> float:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE applied")
    queue = f"bench-celery-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BENCH_BROKER": BROKER_URL.replace("amqp://", "pyamqp://"),
        "BENCH_QUEUE": queue,
        "BENCH_DB": db_url,
        "PYTHONPATH": str(work),
    }
    celery = [str(python), "-m", "celery", "-A", "tasks", "worker", "--pool=prefork", "--loglevel=INFO"]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(
        [*celery, *quiet, f"--concurrency={concurrency}", f"--hostname={queue}@bench"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(worker)
        done = subprocess.run(
            [str(python), "-c", PRODUCE, str(count)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the Celery producer failed:\n{done.stderr[-3000:]}")
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        _delete_queue(queue)
    return count / seconds


def _wait_ready(worker: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Until the worker logs ``ready.`` (it then consumes); its output is read on a thread."""
    ready = threading.Event()
    seen: list[str] = []

    def read() -> None:
        assert worker.stdout is not None
        for line in worker.stdout:
            seen.append(line)
            if "ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout):
        raise SystemExit("the Celery worker did not become ready:\n" + "".join(seen[-30:]))


def run(args: argparse.Namespace, stop: threading.Event) -> tuple[str, bool]:
    facts = machine()
    python = ensure_venv()
    rates: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp,
        databases.database("postgres", "bench_celery", args.pg_url) as db_url,
    ):
        work = Path(tmp)
        (work / "tasks.py").write_text(TASKS)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE applied (n integer PRIMARY KEY)")
        for number in range(1, args.rounds + 1):
            if stop.is_set():
                break
            print(f"round {number}/{args.rounds}", file=sys.stderr)
            rates.append(one_round(python, work, db_url, args.messages, args.concurrency))
    after = load_average()
    facts += [
        ("software", f"celery {CELERY} (its own venv) · psycopg {PSYCOPG}"),
        (
            "settings",
            f"acks_late, confirm_publish, prefork x{args.concurrency}, prefetch 4, one INSERT per task",
        ),
        ("load after", after),
    ]
    median = statistics.median(rates)
    results.emit(
        "celery",
        "Celery end to end (acks_late, confirm_publish)",
        median,
        "msg/s",
        low=min(rates),
        high=max(rates),
    )
    out = [
        "Celery end to end: publish (confirmed) -> task commits its INSERT",
        *fact_lines(facts, 12),
        "",
        "rounds (events/s): " + ", ".join(f"{rate:,.0f}" for rate in rates),
        f"median {median:,.0f} events/s (range {min(rates):,.0f}-{max(rates):,.0f}),"
        f" {args.messages} tasks per round",
    ]
    return "\n".join(out), False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="tasks per round; default 3000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes; default 2 (the cores)")
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args()
    return stoppable_main(lambda stop: run(args, stop))


if __name__ == "__main__":
    sys.exit(main())

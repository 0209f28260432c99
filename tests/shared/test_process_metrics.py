"""Process, platform and GC metrics: prometheus-client's collectors in a worker's (and any
single process's) registry; under multiprocess mode, each process's own samples, summed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from logistics_shared.bus.worker import Worker
from logistics_shared.metrics import ServiceMetrics

from ..helpers.metrics import sample, samples, scrape_app, scrape_registry


def test_a_worker_exports_process_platform_and_gc_metrics(service_client):
    client = service_client("inventory")
    worker = Worker(client.registry["logistics.service"], client.settings, client.registry)
    text = scrape_app(worker.health_app())
    names = {name for name, _labels in samples(text)}
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections_total",
        "python_gc_objects_collected_total",
    ):
        assert name in names, f"{name} missing from the worker's /metrics"
    rss = sample(text, "process_resident_memory_bytes")
    assert rss is not None and rss > 0


def test_service_registries_share_one_gc_collector():
    import gc

    before = len(gc.callbacks)
    for _ in range(5):
        ServiceMetrics("inventory")
    assert len(gc.callbacks) == before, "a GCCollector per registry would add a gc callback each"


SAMPLED = """
import gc, sys, time
from logistics_shared.metrics import ServiceMetrics

metrics = ServiceMetrics("inventory")
assert metrics.web_process is not None
metrics.web_process.start(interval=0.05)
for _ in range(3):
    gc.collect()
time.sleep(0.3)
print(__import__("os").getpid(), flush=True)
"""


def test_multiprocess_web_processes_sample_themselves(tmp_path: Path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}

    def run() -> int:
        out = subprocess.run(
            [sys.executable, "-c", SAMPLED], env=env, capture_output=True, text=True, check=True, timeout=60
        )
        return int(out.stdout.split()[-1])

    first, second = run(), run()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    text = scrape_registry(registry)
    assert sample(text, "logistics_web_processes", service="inventory") == 2
    rss = sample(text, "logistics_web_process_resident_memory_bytes", service="inventory")
    largest = sample(text, "logistics_web_process_max_resident_memory_bytes", service="inventory")
    assert rss is not None and largest is not None and 0 < largest < rss
    cpu = sample(text, "logistics_web_process_cpu_seconds_total", service="inventory")
    assert cpu is not None and cpu > 0
    collections = sample(
        text, "logistics_web_python_gc_collections_total", service="inventory", generation="2"
    )
    assert collections is not None and collections >= 6, "three full collections in each process"
    names = {name for name, _labels in samples(text)}
    assert "process_resident_memory_bytes" not in names, "no process collector in multiprocess mode"

    mark_process_dead(first, str(directory))
    mark_process_dead(second, str(directory))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    text = scrape_registry(registry)
    assert sample(text, "logistics_web_processes", service="inventory") is None, "live gauges drop out"
    assert sample(text, "logistics_web_process_cpu_seconds_total", service="inventory") == cpu

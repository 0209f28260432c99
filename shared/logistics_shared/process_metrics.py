"""Process and Python GC metrics.

A single process (a worker, ``up``, ``serve --server waitress``) exports
prometheus-client's own collectors in its service registry: ``process_*`` (CPU, memory,
open files, start time), ``python_info`` and ``python_gc_*``.

Under gunicorn, prometheus-client's multiprocess mode cannot: custom collectors (the
process and GC collectors are such) do not work there, and a gauge may neither carry a
``pid`` label nor use ``set_function``. What each process can do is write samples of
its own into the shared files, which ``/metrics`` sums: :class:`WebProcessSampler`
samples its process every few seconds into ``logistics_web_*`` metrics, summed over the
server's live processes (gauges in ``livesum`` mode) or over every process it ever ran
(counters: CPU seconds and GC collections, fed by the deltas since the last sample).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
)

log = logging.getLogger(__name__)

#: Seconds between two samples of a gunicorn worker process.
SAMPLE_SECONDS = 5.0


def add_default_collectors(registry: CollectorRegistry) -> None:
    """prometheus-client's process, platform and GC collectors, in ``registry``.

    The library's own instances (those of its default registry), shared by every service
    registry of the process: a new ``GCCollector`` would add a ``gc.callbacks`` entry of
    its own each time, for as long as the process lives.
    """
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)


class WebProcessSampler:
    """Samples this process into multiprocess-safe metrics (one per gunicorn worker)."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        labels = ["service"]
        self.processes = Gauge(
            "logistics_web_processes",
            "Live web server processes (gunicorn workers) that sampled themselves.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.resident_memory = Gauge(
            "logistics_web_process_resident_memory_bytes",
            "Resident memory of the live web processes, summed.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.max_resident_memory = Gauge(
            "logistics_web_process_max_resident_memory_bytes",
            "Resident memory of the largest live web process.",
            labels,
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.open_fds = Gauge(
            "logistics_web_process_open_fds",
            "Open file descriptors of the live web processes, summed.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.cpu_seconds = Counter(
            "logistics_web_process_cpu_seconds",
            "User and system CPU time of every web process this server ran.",
            labels,
            registry=registry,
        )
        self.gc_collections = Counter(
            "logistics_web_python_gc_collections",
            "Python garbage collections by generation, over every web process this server ran.",
            [*labels, "generation"],
            registry=registry,
        )
        self.gc_collected = Counter(
            "logistics_web_python_gc_objects_collected",
            "Objects the Python garbage collector freed, by generation, over every web process.",
            [*labels, "generation"],
            registry=registry,
        )
        self._process = ProcessCollector(registry=None)
        self._cpu = 0.0
        self._gc: list[tuple[int, int]] = []
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Read this process once and update the metrics (deltas for the counters)."""
        values = {
            sample.name: sample.value for family in self._process.collect() for sample in family.samples
        }
        self.processes.labels(self.service).set(1)
        if "process_resident_memory_bytes" in values:
            self.resident_memory.labels(self.service).set(values["process_resident_memory_bytes"])
            self.max_resident_memory.labels(self.service).set(values["process_resident_memory_bytes"])
        if "process_open_fds" in values:
            self.open_fds.labels(self.service).set(values["process_open_fds"])
        cpu = values.get("process_cpu_seconds_total")
        if cpu is not None and cpu > self._cpu:
            self.cpu_seconds.labels(self.service).inc(cpu - self._cpu)
            self._cpu = cpu
        stats = [(gen["collections"], gen["collected"]) for gen in gc.get_stats()]
        previous = self._gc or [(0, 0)] * len(stats)
        for generation, ((runs, freed), (old_runs, old_freed)) in enumerate(
            zip(stats, previous, strict=True)
        ):
            if runs > old_runs:
                self.gc_collections.labels(self.service, str(generation)).inc(runs - old_runs)
            if freed > old_freed:
                self.gc_collected.labels(self.service, str(generation)).inc(freed - old_freed)
        self._gc = stats

    def start(self, interval: float = SAMPLE_SECONDS) -> None:
        """Sample now and then every ``interval`` seconds, in a daemon thread (after the fork:
        a thread does not survive one, and the counters start from this process's own zero)."""
        # A forked process starts its CPU time at zero but inherits the parent's GC counts.
        self._cpu = 0.0
        self._gc = [(gen["collections"], gen["collected"]) for gen in gc.get_stats()]
        self.sample()

        def loop() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.sample()
                except Exception:  # a failed sample must not end the sampling
                    log.warning("process sample failed", exc_info=True)

        self._thread = threading.Thread(target=loop, name="process-sampler", daemon=True)
        self._thread.start()

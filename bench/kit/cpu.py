"""Where the CPU went during a phase, from /proc: the whole machine, this process, named processes."""

from __future__ import annotations

import os
import time

#: Processes of the machine grouped by command name, for the rest of the CPU.
SHARED_SERVERS = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ"}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def all_processes_cpu() -> dict[int, tuple[str, float]]:
    """User+system CPU seconds and command name of every process (one /proc scan)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                raw = stat.read()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 1 :].split()
            found[int(entry)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


class SelfCpuMeter:
    """The machine's busy share and this process's CPU over a phase (``label`` names the process)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.machine = machine_cpu()
        self.process = sum(os.times()[:2])
        self.wall = time.monotonic()

    def read(self) -> str:
        busy0, total0 = self.machine
        busy1, total1 = machine_cpu()
        wall = time.monotonic() - self.wall
        machine = 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan")
        own = 100.0 * (sum(os.times()[:2]) - self.process) / wall if wall else float("nan")
        return f"machine {machine:.0f}% busy of {os.cpu_count()} cores; {self.label} {own:.0f}% of one"


class CpuMeter:
    """Where the machine's CPU went during a phase: our processes, PostgreSQL, RabbitMQ, the rest.

    Processes that exited during the phase are missing from the groups (their CPU lands in
    "other"); PostgreSQL backends of pooled connections live for the whole run.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, tuple[float, float], dict[int, tuple[str, float]]]:
        return time.monotonic(), machine_cpu(), all_processes_cpu()

    def read(self) -> str:
        (t0, (busy0, total0), before), (t1, (busy1, total1), after) = self.start, self._sample()
        wall = t1 - t0
        if wall <= 0 or total1 <= total0:
            return "cpu: n/a"

        def used(pid: int) -> float:
            return after.get(pid, ("", 0.0))[1] - before.get(pid, ("", 0.0))[1]

        busy = busy1 - busy0
        parts = [f"machine {100 * busy / (total1 - total0):.0f}% busy of {os.cpu_count()} cores"]
        accounted = 0.0
        for name, pid in self.pids.items():
            accounted += used(pid)
            parts.append(f"{name} {100 * used(pid) / wall:.0f}%")
        ours = set(self.pids.values())
        for comm, label in SHARED_SERVERS.items():
            group = sum(used(pid) for pid, (c, _) in after.items() if c == comm and pid not in ours)
            accounted += group
            parts.append(f"{label} {100 * group / wall:.0f}%")
        parts.append(f"other {100 * max(0.0, busy - accounted) / wall:.0f}%")
        return "cpu (% of one core): " + " · ".join(parts)

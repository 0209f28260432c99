"""The machine facts printed above every table: any number quoted belongs with them."""

from __future__ import annotations

import os
import platform
from contextlib import suppress
from importlib.metadata import version


def cpu_model() -> str:
    model = platform.processor() or platform.machine()
    with suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return model


def cores() -> str:
    """``2 (2 usable) · <model>``: the CPUs, those this process may run on, and their model."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{os.cpu_count()} ({usable} usable) · {cpu_model()}"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> list[tuple[str, str]]:
    """The first two facts of every bench: cores, and the load average as the run starts."""
    return [("cores", cores()), ("load average", f"{load_average()} (at start)")]


def software(*parts: str) -> str:
    """``Python 3.11.7 · <parts>``."""
    return " · ".join((f"Python {platform.python_version()}", *parts))


def libraries(*names: str) -> str:
    """The installed versions of these distributions, ``kombu 5.3.4 · amqp 5.2.0``."""
    return " · ".join(f"{name} {version(name)}" for name in names)


def lines(facts: list[tuple[str, str]], width: int) -> list[str]:
    return [f"  {key:<{width}} {value}" for key, value in facts]

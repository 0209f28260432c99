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


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_warning(when: str) -> str | None:
    """A warning when the 1-minute load is above the cores: the figures then measure the
    machine's other work as much as ours (GUIDE §10), and should not be quoted alone."""
    load, cores_ = os.getloadavg()[0], usable_cores()
    if load <= cores_:
        return None
    return f"WARNING: load {load:.2f} {when} is above the {cores_} cores: these figures are not trustworthy"


def machine() -> list[tuple[str, str]]:
    """The first facts of every bench: cores, the load average as the run starts, and a
    warning when that load is above the cores. ``kit`` prints the load at the end too."""
    facts = [("cores", cores()), ("load average", f"{load_average()} (at start)")]
    warning = load_warning("at the start")
    return [*facts, ("warning", warning)] if warning else facts


def at_exit() -> str:
    """The closing line every bench prints (registered by ``kit/__init__.py``)."""
    warning = load_warning("at the end")
    end = f"load average at the end: {load_average()} ({usable_cores()} cores)"
    return f"{end}\n{warning}" if warning else end


def software(*parts: str) -> str:
    """``Python 3.11.7 · <parts>``."""
    return " · ".join((f"Python {platform.python_version()}", *parts))


def libraries(*names: str) -> str:
    """The installed versions of these distributions, ``kombu 5.3.4 · amqp 5.2.0``."""
    return " · ".join(f"{name} {version(name)}" for name in names)


def lines(facts: list[tuple[str, str]], width: int) -> list[str]:
    return [f"  {key:<{width}} {value}" for key, value in facts]

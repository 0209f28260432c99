"""The figures a bench hands to ``make bench``'s report, besides the table it prints.

A bench calls ``emit`` for each headline figure; when ``LOGISTICS_BENCH_RESULTS`` names a file
(bench/report.py sets it), one JSON line per figure is appended there, otherwise nothing
happens. The printed table stays the bench's own report: this is only what the plots and the
summary table of the report are drawn from.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV = "LOGISTICS_BENCH_RESULTS"


def emit(bench: str, figure: str, value: float, unit: str, **detail: Any) -> None:
    """One figure: ``bench`` (the script), ``figure`` (its name), value and unit, and
    ``detail`` (range, limit, load, whatever explains the number) for the report."""
    path = os.environ.get(ENV)
    if not path:
        return
    record = {
        "bench": bench,
        "figure": figure,
        "value": value,
        "unit": unit,
        "load": os.getloadavg()[0],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **detail,
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")

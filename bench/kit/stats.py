"""Percentiles and millisecond cells for the tables."""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def ms(value: float) -> str:
    """A table cell in milliseconds, ``-`` where there is no value."""
    return "-" if math.isnan(value) else f"{value:.1f}"


def ms_max(values: list[float]) -> str:
    return ms(max(values) if values else float("nan"))


def distribution(values: list[float]) -> str:
    """The cells ``p50 p90 p99 max`` of a latency row, each 7 wide."""
    return " ".join(
        f"{cell:>7}" for cell in (*(ms(percentile(values, q)) for q in (50, 90, 99)), ms_max(values))
    )

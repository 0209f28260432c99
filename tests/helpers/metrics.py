"""Reading Prometheus samples the way a scrape sees them (text format)."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from webtest import TestApp


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: ``{(name, sorted label pairs): value}``."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` whose labels include ``labels``; None when absent."""
    matches = [
        value
        for (found, pairs), value in samples(text).items()
        if found == name and labels.items() <= dict(pairs).items()
    ]
    assert len(matches) <= 1, f"{len(matches)} samples of {name} match {labels}"
    return matches[0] if matches else None


def scrape_app(app: Any) -> str:
    """GET /metrics of a WSGI app (the worker's health app, a service's web app)."""
    return str(TestApp(app).get("/metrics").text)


def scrape_registry(registry: Any) -> str:
    return generate_latest(registry).decode()

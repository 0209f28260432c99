"""Fixtures of the delivery tests: a service on PostgreSQL whose dispatcher may send to
loopback (allow-listed), a loopback receiver, endpoints made through the API."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from logistics_shared.webhooks.dispatcher import Dispatcher

from ..helpers.bus import wait_until
from .receiver import Receiver

#: Fast enough for a test: short timeouts and retries; loopback allowed.
SETTINGS = {
    "webhook_allow_http": "true",
    "webhook_allow_networks": "127.0.0.0/8,::1/128",
    "webhook_connect_timeout": "1",
    "webhook_read_timeout": "1",
    "webhook_retry_schedule": "0.2,0.2,0.2",
    "webhook_poll_seconds": "0.1",
    "web_graceful_timeout": "2",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


class Running:
    """A dispatcher running on its own thread, as ``logistics up`` runs it."""

    def __init__(self, client: Any, **settings: Any) -> None:
        chosen = dataclasses.replace(client.settings, **settings)
        self.dispatcher = Dispatcher(client.registry["logistics.service"].name, chosen, client.registry)
        self.thread = threading.Thread(target=self.dispatcher.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.dispatcher.readiness()["status"] == "ready", what="dispatcher ready")

    def stop(self) -> None:
        self.dispatcher.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the dispatcher did not stop"


@pytest.fixture
def dispatcher() -> Iterator[Callable[..., Running]]:
    """``dispatcher(client, **settings)``: one started on the client's app (settings changed)."""
    started: list[Running] = []

    def start(client: Any, **settings: Any) -> Running:
        running = Running(client, **settings)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def subscribe(client: Any, url: str, event_types: list[str], **extra: Any) -> dict[str, Any]:
    """An endpoint made through the API, as an integrator would; its secret from the 201."""
    service = client.registry["logistics.service"].name
    body = {"url": url, "event_types": event_types, **extra}
    return dict(client.as_().post_json(f"/v1/{service}/webhook-endpoints", body, status=201).json)

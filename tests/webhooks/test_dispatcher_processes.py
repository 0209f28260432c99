"""Dispatchers sharing work and dying: two never send the same attempt, and one killed
with SIGKILL mid-burst loses nothing (its claims run out and the next one sends them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from logistics_shared.webhooks.dispatcher import Dispatcher
from logistics_shared.webhooks.fanout import new_delivery, write_deliveries

from ..helpers.bus import wait_until
from .conftest import SETTINGS, subscribe

pytestmark = pytest.mark.postgres

LOGISTICS = str(Path(sys.executable).with_name("logistics"))
ENDPOINTS = 10
MESSAGES = 30  # per endpoint: 300 deliveries


@pytest.fixture
def shipping(service_client):
    return service_client("shipping", "postgres", **SETTINGS)


def burst(client, receiver) -> set[str]:
    """300 due deliveries to ten slow endpoints; returns their message ids."""
    tables = client.registry["logistics.platform_tables"].webhooks
    now = datetime.now(UTC)
    messages, deliveries = [], []
    for n in range(ENDPOINTS):
        endpoint = subscribe(client, receiver.url(f"/slow/{n}"), ["shipment.*"])
        for _ in range(MESSAGES):
            message_id = str(uuid.uuid4())
            messages.append(
                {
                    "id": message_id,
                    "event_type": "shipment.ready",
                    "warehouse": "AMS",
                    "payload": '{"type":"shipment.ready","timestamp":"2026-12-04T00:00:00Z","data":{}}',
                    "created_at": now,
                }
            )
            deliveries.append(new_delivery(endpoint["id"], message_id, "shipment.ready", now))
    with client.registry["dbsession_factory"]() as session, session.begin():
        write_deliveries(session, tables, messages, deliveries, "shipping")
    return {m["id"] for m in messages}


def delivered(client) -> int:
    d = client.registry["logistics.platform_tables"].webhooks.deliveries
    with client.engine.connect() as conn:
        return conn.execute(select(func.count()).where(d.c.status == "delivered")).scalar_one()


def received(receiver) -> Counter[str]:
    return Counter(r.message_id for r in receiver.received)


def test_two_dispatchers_share_a_burst_and_never_send_the_same_attempt(shipping, dispatcher, receiver):
    ids = burst(shipping, receiver)
    dispatcher(shipping)
    dispatcher(shipping)
    wait_until(lambda: delivered(shipping) == len(ids), timeout=90, what="every delivery delivered")
    counts = received(receiver)
    assert set(counts) == ids
    assert max(counts.values()) == 1, "no message was sent twice"
    a = shipping.registry["logistics.platform_tables"].webhooks.attempts
    with shipping.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(a)).scalar_one() == len(ids)


def _start(client, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")},
        "LOGISTICS_SHIPPING_DATABASE_URL": client.settings.database_url,
        "LOGISTICS_SECRETS_KEY": client.settings.secrets_key,
        "LOGISTICS_LOG_LEVEL": "WARNING",
        **{f"LOGISTICS_{k.upper()}": v for k, v in SETTINGS.items()},
    }
    log = (tmp_path / f"dispatcher-{port}.log").open("w")
    process = subprocess.Popen(
        [LOGISTICS, "dispatcher", "shipping", "--health-port", str(port)], env=env, stdout=log, stderr=log
    )
    return process, port


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_a_dispatcher_killed_mid_burst_loses_nothing(shipping, receiver, tmp_path):
    ids = burst(shipping, receiver)
    first, _ = _start(shipping, tmp_path)
    try:
        wait_until(lambda: len(receiver.received) >= 60, timeout=60, what="the burst under way")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = len(receiver.received)
        assert at_kill < len(ids), "the burst was over before the kill; nothing was tested"
        second, port = _start(shipping, tmp_path)
        try:
            # Its port: ready once its loop reached the database, and its metrics.
            wait_until(lambda: _get(port, "/readyz")[0] == 200, what="the dispatcher's /readyz")
            status, metrics = _get(port, "/metrics")
            assert status == 200 and "logistics_webhook_due_deliveries" in metrics
            # The killed one's claims expire (its lease), then the second sends them.
            wait_until(lambda: delivered(shipping) == len(ids), timeout=120, what="every delivery delivered")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, "SIGTERM stops a dispatcher cleanly"
    finally:
        if first.poll() is None:
            first.kill()
    counts = received(receiver)
    assert set(counts) == ids, "nothing lost"
    duplicates = sum(n - 1 for n in counts.values())
    # Only what the killed one had in flight can arrive twice: at most two waves of the
    # per-endpoint concurrency for each endpoint.
    assert duplicates <= ENDPOINTS * 2 * shipping.settings.webhook_endpoint_concurrency


def test_a_slow_endpoints_backlog_is_claimed_only_as_it_can_take_it(shipping, receiver):
    """One endpoint, 300 due deliveries, 4 at a time: the dispatcher claims what can start
    and never claims rows only to give them back (a busy loop of claims and releases)."""
    tables = shipping.registry["logistics.platform_tables"].webhooks
    endpoint = subscribe(shipping, receiver.url("/slow/one"), ["shipment.*"])
    now = datetime.now(UTC)
    messages = [
        {
            "id": str(uuid.uuid4()),
            "event_type": "shipment.ready",
            "warehouse": "AMS",
            "payload": "{}",
            "created_at": now,
        }
        for _ in range(300)
    ]
    deliveries = [new_delivery(endpoint["id"], m["id"], "shipment.ready", now) for m in messages]
    with shipping.registry["dbsession_factory"]() as session, session.begin():
        write_deliveries(session, tables, messages, deliveries, "shipping")
    runner = Dispatcher("shipping", shipping.settings, shipping.registry)
    released: list[int] = []
    give_back = runner.store.release
    runner.store.release = lambda batch: (released.append(len(batch)), give_back(batch))[1]  # type: ignore[method-assign]
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(receiver.received) >= 60, timeout=60, what="60 deliveries")
        given_back = sum(released)  # before the stop, which releases what it cuts short
    finally:
        runner.stop()
        thread.join(30)
    assert given_back == 0, f"claimed only to be given back: {released}"

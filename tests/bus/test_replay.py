"""``logistics replay``: a read model created after the events is filled from the producer's
outbox, through the one consumer's queue, on the machine's RabbitMQ and PostgreSQL.

Shipping and inventory run the saga first while support does not exist; then support
starts on a fresh database (its queues did not exist when shipping published) and a
replay of shipping's events to ``support.shipment_view`` builds its shipment read model.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from logistics_shared.bus.worker import Worker
from logistics_shared.cli import main

from ..conftest import JWT_SECRET
from ..helpers.bus import unpublished, wait_until
from ..helpers.support import FAST
from ..inventory.conftest import ADDRESS, receive, seed

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

HOOK = {"url": "https://hooks.example.com/shipments", "event_types": ["shipment.*"]}


def order(reference, quantity):
    return {
        "reference": reference,
        "warehouse": "AMS",
        "ship_to": ADDRESS,
        "lines": [{"sku": "SKU-1", "quantity": quantity}],
    }


def status_of(ship, shipment_id):
    return ship.as_().get(f"/v1/shipments/{shipment_id}").json["status"]


@pytest.fixture
def produced(service_client, specs, rabbit, namespace):
    """Two shipments through the saga (one ready, one on hold) with no support anywhere;
    returns the clients, the shipment ids and a time between the two shipments' events."""
    inv = service_client("inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    ship = service_client("shipping", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    seed(inv)
    ship.as_().post_json("/v1/shipping/webhook-endpoints", HOOK, status=201)  # the relay fans out
    workers = [
        Worker(specs["inventory"], inv.settings, inv.registry, periodic=False),
        Worker(specs["shipping"], ship.settings, ship.registry, periodic=False),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        wait_until(lambda w=worker: w.readiness()["status"] == "ready", what="workers ready")
    receive(inv, "AMS", "SKU-1", 5)
    ready = ship.as_().post_json("/v1/shipments", order("R-1001", 2)).json["id"]
    wait_until(lambda: status_of(ship, ready) == "ready", what="R-1001 ready")
    wait_until(lambda: unpublished(ship) == 0, what="shipping's outbox drained")
    between = datetime.now(UTC)
    held = ship.as_().post_json("/v1/shipments", order("R-1002", 50)).json["id"]
    wait_until(lambda: status_of(ship, held) == "on_hold", what="R-1002 on hold")
    wait_until(lambda: unpublished(ship) == 0, what="shipping's outbox drained")
    yield inv, ship, {"ready": ready, "held": held}, between
    for worker in workers:
        worker.shutdown()


def deliveries(ship) -> int:
    table = ship.registry["logistics.platform_tables"].webhooks.deliveries
    with ship.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def replay(ship, rabbit, namespace, tmp_path, *args):
    env = {
        "LOGISTICS_SHIPPING_DATABASE_URL": ship.settings.database_url,
        "LOGISTICS_BROKER_URL": rabbit,
        "LOGISTICS_BUS_NAMESPACE": namespace,
        "LOGISTICS_JWT_SECRET": JWT_SECRET,
        "LOGISTICS_VAR_DIR": str(tmp_path),
        "LOGISTICS_SECRETS_KEY": ship.settings.secrets_key,
    }
    result = CliRunner(env=env).invoke(main, ["replay", "shipping", *args])
    assert result.exit_code == 0, result.output
    return result.output


def counted(metrics, service, handler):
    return metrics.consumed.labels(service, handler)._value.get()


def duplicates(metrics, service, handler):
    return metrics.duplicates.labels(service, handler)._value.get()


def test_a_new_read_model_is_filled_by_a_replay_to_its_queue_alone(
    produced, service_client, specs, rabbit, namespace, tmp_path, tap
):
    inv, ship, ids, between = produced
    support = service_client("support", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    runner = Worker(specs["support"], support.settings, support.registry, periodic=False)
    runner.start()
    try:
        wait_until(lambda: runner.readiness()["status"] == "ready", what="support worker ready")
        agent = support.as_("support_agent")
        agent.get(f"/v1/shipments/{ids['ready']}", status=404)  # published before its queue existed
        wire = tap("shipping")
        hooks = deliveries(ship)
        assert hooks > 0  # the relay did fan the original events out
        inv_bus = inv.registry["logistics.metrics"].bus
        before_inventory = {h: counted(inv_bus, "inventory", h) for h in ("shipment_requested",)}
        bus = support.registry["logistics.metrics"].bus

        # --since: only what happened after `between` (R-1002's requested and on_hold).
        out = replay(
            ship, rabbit, namespace, tmp_path, "--since", between.isoformat(), "--to", "support.shipment_view"
        )
        assert "shipment.requested: 1" in out and "shipment.on_hold: 1" in out
        assert f"sent to {namespace}.support.shipment_view: 2 event(s)" in out
        wait_until(lambda: counted(bus, "support", "shipment_view") == 2, what="2 events applied")
        held = agent.get(f"/v1/shipments/{ids['held']}").json
        assert (held["reference"], held["status"]) == ("R-1002", "on_hold")
        agent.get(f"/v1/shipments/{ids['ready']}", status=404)

        # Everything kept: R-1001 arrives; R-1002's two events are inbox duplicates.
        out = replay(ship, rabbit, namespace, tmp_path, "--since", "1h", "--to", "support.shipment_view")
        assert f"sent to {namespace}.support.shipment_view: 4 event(s)" in out
        wait_until(lambda: duplicates(bus, "support", "shipment_view") == 2, what="2 duplicates")
        wait_until(lambda: counted(bus, "support", "shipment_view") == 4, what="4 events applied")
        for key, reference in (("ready", "R-1001"), ("held", "R-1002")):
            view = agent.get(f"/v1/shipments/{ids[key]}").json
            assert (view["reference"], view["status"]) == (reference, status_of(ship, ids[key]))
        snapshot = agent.get("/v1/shipments").json

        # Once more: the inbox makes all of it a no-op.
        replay(ship, rabbit, namespace, tmp_path, "--since", "1h", "--to", "support.shipment_view")
        wait_until(lambda: duplicates(bus, "support", "shipment_view") == 6, what="6 duplicates")
        assert counted(bus, "support", "shipment_view") == 4
        assert agent.get("/v1/shipments").json == snapshot

        # Nobody else saw any of it: not the exchange, not the other queues, not the webhooks.
        assert wire.messages == []
        assert {h: counted(inv_bus, "inventory", h) for h in before_inventory} == before_inventory
        assert duplicates(inv_bus, "inventory", "shipment_requested") == 0
        for handler in ("shipment_trouble", "delivery_note"):
            assert counted(bus, "support", handler) + duplicates(bus, "support", handler) == 0
        assert deliveries(ship) == hooks
    finally:
        runner.shutdown()


def test_dry_run_counts_by_window_and_type_and_sends_nothing(produced, rabbit, namespace, tmp_path):
    _inv, ship, _ids, between = produced
    to = ("--to", "support.shipment_view")
    everything = replay(ship, rabbit, namespace, tmp_path, "--since", "1h", *to, "--dry-run")
    assert "shipment.requested: 2" in everything and "shipment.ready: 1" in everything
    assert "shipment.on_hold: 1" in everything and "4 event(s)" in everything
    before = replay(
        ship, rabbit, namespace, tmp_path, "--since", "1h", "--until", between.isoformat(), *to, "--dry-run"
    )
    assert "shipment.requested: 1" in before and "shipment.ready: 1" in before
    assert "on_hold" not in before
    typed = replay(
        ship, rabbit, namespace, tmp_path, "--since", "1h", *to, "--type", "shipment.on_hold", "--dry-run"
    )
    assert typed.splitlines()[-2:] == [
        "shipment.on_hold: 1",
        f"would send to {namespace}.support.shipment_view: 1 event(s)",
    ]
    later = replay(
        ship, rabbit, namespace, tmp_path, "--since", datetime.now(UTC).isoformat(), *to, "--dry-run"
    )
    assert "0 event(s)" in later
    # The inventory consumer takes its own types only.
    inventory = replay(
        ship,
        rabbit,
        namespace,
        tmp_path,
        "--since",
        "1h",
        "--to",
        "inventory.shipment_requested",
        "--dry-run",
    )
    assert "shipment.requested: 2" in inventory and "ready" not in inventory


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--to", "support.tickets"],
            "'support.tickets' consumes no shipping events; consumers of shipping: "
            "inventory.shipment_cancelled, inventory.shipment_label_purchased, inventory.shipment_requested, "
            "support.delivery_note, support.shipment_trouble, support.shipment_view",
        ),
        (["--to", "shipping.stock_reserved"], "'shipping.stock_reserved' consumes no shipping events"),
        (
            ["--to", "support.shipment_trouble", "--type", "shipment.ready"],
            "support.shipment_trouble does not take shipment.ready; "
            "it takes: shipment.exception, shipment.delivery_failed",
        ),
        (["--to", "support.shipment_view", "--until", "2020-01-01"], "--until must be later than --since"),
        (["--to", "support.shipment_view", "--since", "yesterday"], "'yesterday': an ISO 8601 time"),
    ],
)
def test_bad_arguments_are_one_clear_line(args, message, tmp_path):
    argv = ["replay", "shipping", "--since", "2026-01-01T00:00:00Z", *args]
    if "--since" in args:
        argv = ["replay", "shipping", *args]
    result = CliRunner(env={"LOGISTICS_VAR_DIR": str(tmp_path)}).invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())

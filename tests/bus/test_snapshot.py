"""``logistics replay --snapshot``: a read model whose events the producer's outbox no longer
holds is filled from the producer's current state, through the one consumer's queue, on
the machine's RabbitMQ and PostgreSQL.

Inventory creates and changes its catalogue while shipping does not exist (no queue
of shipping's received those events), then its outbox rows are deleted, as the relay
does after ``outbox_retention_hours``: a replay has nothing left to send. Shipping
starts on a fresh database and a snapshot of inventory to ``shipping.catalogue``
builds its catalogue read model.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from logistics_shared.bus.replay import Snapshot, find_consumer, snapshot_sources
from logistics_shared.bus.worker import Worker
from logistics_shared.cli import main
from logistics_shared.events import REGISTRY

from ..conftest import JWT_SECRET
from ..helpers.bus import unpublished, wait_until
from ..helpers.support import FAST
from ..inventory.conftest import ADDRESS, seed

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

TO = ("--to", "shipping.catalogue")


@pytest.fixture
def inventory_alone(service_client, specs, rabbit, namespace):
    """Inventory's catalogue made and changed with no shipping anywhere; its outbox then emptied."""
    inv = service_client("inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    worker = Worker(specs["inventory"], inv.settings, inv.registry, periodic=False)
    worker.start()
    wait_until(lambda: worker.readiness()["status"] == "ready", what="inventory worker ready")
    seed(inv, skus=("SKU-1", "SKU-2", "SKU-3"))
    inv.as_().patch_json("/v1/items/SKU-1", {"name": "Item one, renamed"}, status=200)
    inv.as_().patch_json("/v1/items/SKU-1", {"unit_weight_g": 300}, status=200)  # version 3
    inv.as_().patch_json("/v1/warehouses/AMS", {"address": {**ADDRESS, "phone": "+31 10 000"}}, status=200)
    wait_until(lambda: unpublished(inv) == 0, what="inventory's outbox published")
    with inv.engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox"))  # past the retention: nothing to replay
    yield inv
    worker.shutdown()


@pytest.fixture
def shipping_new(inventory_alone, service_client, specs, rabbit, namespace):
    ship = service_client("shipping", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    worker = Worker(specs["shipping"], ship.settings, ship.registry)  # its drain marks too
    worker.start()
    wait_until(lambda: worker.readiness()["status"] == "ready", what="shipping worker ready")
    yield inventory_alone, ship
    worker.shutdown()


def cli(inv, rabbit, namespace, tmp_path, *args, code=0):
    env = {
        "LOGISTICS_INVENTORY_DATABASE_URL": inv.settings.database_url,
        "LOGISTICS_BROKER_URL": rabbit,
        "LOGISTICS_BUS_NAMESPACE": namespace,
        "LOGISTICS_JWT_SECRET": JWT_SECRET,
        "LOGISTICS_VAR_DIR": str(tmp_path),
        "LOGISTICS_SECRETS_KEY": inv.settings.secrets_key,
    }
    result = CliRunner(env=env).invoke(main, ["replay", "inventory", *args])
    assert result.exit_code == code, result.output
    return result.output


def rows(client, sql):
    with client.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(sql))]


def inventory_catalogue(inv):
    items = rows(
        inv,
        "SELECT sku, name, unit_weight_g, length_mm, width_mm, height_mm, version FROM items ORDER BY sku",
    )
    warehouses = rows(inv, "SELECT code, name, address, version FROM warehouses ORDER BY code")
    for warehouse in warehouses:
        warehouse["address"] = orjson.loads(warehouse["address"])
    return items, warehouses


def shipping_catalogue(ship):
    items = rows(
        ship,
        "SELECT sku, name, unit_weight_g, length_mm, width_mm, height_mm, version FROM catalogue_items "
        "ORDER BY sku",
    )
    warehouses = rows(ship, "SELECT code, name, address, version FROM catalogue_warehouses ORDER BY code")
    for warehouse in warehouses:
        warehouse["address"] = orjson.loads(warehouse["address"])
    return items, warehouses


def whole_read_model(ship):
    """Every column, ``updated_at`` included: a write that changed nothing would still show."""
    return rows(ship, "SELECT * FROM catalogue_items ORDER BY sku"), rows(
        ship, "SELECT * FROM catalogue_warehouses ORDER BY code"
    )


def counted(client, handler):
    return client.registry["logistics.metrics"].bus.consumed.labels("shipping", handler)._value.get()


def order(sku, reference):
    return {
        "reference": reference,
        "warehouse": "AMS",
        "ship_to": ADDRESS,
        "lines": [{"sku": sku, "quantity": 1}],
    }


def test_a_snapshot_fills_the_read_model_the_outbox_no_longer_can(
    shipping_new, rabbit, namespace, tmp_path, tap
):
    inv, ship = shipping_new
    assert shipping_catalogue(ship) == ([], [])
    replayed = cli(inv, rabbit, namespace, tmp_path, "--since", "30d", *TO, "--dry-run")
    assert "0 event(s)" in replayed  # the outbox holds nothing: a replay cannot fill it
    wire = tap("inventory")

    out = cli(inv, rabbit, namespace, tmp_path, "--snapshot", *TO)
    assert "warehouse.updated: 2" in out and "item.updated: 3" in out
    assert f"sent to {namespace}.shipping.catalogue: 5 event(s)" in out
    wait_until(lambda: counted(ship, "catalogue") == 5, what="5 snapshot events applied")
    assert shipping_catalogue(ship) == inventory_catalogue(inv)
    assert shipping_catalogue(ship)[0][0]["version"] == 3  # SKU-1 as it is now
    assert shipping_catalogue(ship)[1][0]["address"]["phone"] == "+31 10 000"

    # A second snapshot: every event is older-or-equal by version, so nothing is written.
    before = whole_read_model(ship)
    cli(inv, rabbit, namespace, tmp_path, "--snapshot", *TO)
    wait_until(lambda: counted(ship, "catalogue") == 10, what="the second snapshot consumed")
    assert whole_read_model(ship) == before

    # Nobody else saw any of it: not the exchange (so no relay, no webhook fan-out: inventory
    # offers no webhooks anyway), not shipping's other queues; the outbox was not written.
    assert wire.messages == []
    for handler in ("stock_reserved", "reservation_failed", "stock_released"):
        assert counted(ship, handler) == 0
    assert rows(inv, "SELECT count(*) AS n FROM outbox WHERE event_type LIKE 'item.%'") == [{"n": 0}]

    # Synced and drained: shipping knows the catalogue inventory had before it existed.
    def rejects_unknown():
        res = ship.as_().post_json(
            "/v1/shipments", order("TYPO-1", f"T-{uuid.uuid4().hex[:6]}"), expect_errors=True
        )
        return res.status_int == 422

    wait_until(rejects_unknown, what="an unknown SKU rejected once drained")
    made = ship.as_().post_json("/v1/shipments", order("SKU-3", "KNOWN"), status=201).json
    assert made["parcels"] == [{"weight_g": 250, "length_mm": 100, "width_mm": 50, "height_mm": 20}]


def test_a_newer_state_in_the_read_model_is_kept(shipping_new, rabbit, namespace, tmp_path):
    inv, ship = shipping_new
    with ship.engine.begin() as conn:  # as if SKU-1's next change arrived while the snapshot ran
        conn.execute(
            text(
                "INSERT INTO catalogue_items (sku, name, unit_weight_g, length_mm, width_mm, height_mm, "
                "version, updated_at) VALUES ('SKU-1', 'Newer', 999, 1, 1, 1, 4, now())"
            )
        )
    cli(inv, rabbit, namespace, tmp_path, "--snapshot", *TO)
    wait_until(lambda: counted(ship, "catalogue") == 5, what="5 snapshot events consumed")
    items, warehouses = shipping_catalogue(ship)
    assert (items[0]["name"], items[0]["unit_weight_g"], items[0]["version"]) == ("Newer", 999, 4)
    assert items[1:] == inventory_catalogue(inv)[0][1:]
    assert warehouses == inventory_catalogue(inv)[1]


def test_type_filter_and_dry_run(shipping_new, rabbit, namespace, tmp_path):
    inv, ship = shipping_new
    everything = cli(inv, rabbit, namespace, tmp_path, "--snapshot", *TO, "--dry-run")
    assert everything.splitlines()[-3:] == [
        "item.updated: 3",
        "warehouse.updated: 2",
        f"would send to {namespace}.shipping.catalogue: 5 event(s)",
    ]
    assert counted(ship, "catalogue") == 0
    out = cli(inv, rabbit, namespace, tmp_path, "--snapshot", *TO, "--type", "warehouse.updated")
    assert f"sent to {namespace}.shipping.catalogue: 2 event(s)" in out and "item" not in out
    wait_until(lambda: counted(ship, "catalogue") == 2, what="2 warehouses applied")
    assert shipping_catalogue(ship) == ([], inventory_catalogue(inv)[1])


def test_snapshot_events_are_produced_events_of_the_run(inventory_alone, specs, namespace):
    """Fresh ids, the run as correlation id, the current version, the live events' exact data,
    valid against the registered schema; paged by primary key (batches of 2 here)."""
    inv = inventory_alone
    consumer = find_consumer("inventory", "shipping.catalogue", specs)
    job = Snapshot(
        producer="inventory",
        consumer=consumer,
        sources=snapshot_sources("inventory", specs["inventory"], consumer, ()),
        settings=inv.settings,
        session_factory=inv.registry["dbsession_factory"],
        outbox=inv.registry["logistics.platform_tables"].outbox,
        batch_size=2,
    )
    batches = list(job.batches())
    assert [[row.event_type for row in batch] for batch in batches] == [
        ["warehouse.updated", "warehouse.updated"],
        ["item.updated", "item.updated"],
        ["item.updated"],
    ]
    envelopes = [orjson.loads(row.payload) for batch in batches for row in batch]
    assert len({e["id"] for e in envelopes}) == 5
    assert {e["correlation_id"] for e in envelopes} == {job.run_id}
    assert job.run_id.startswith("snapshot:inventory:")
    assert all(e["producer"] == "inventory" and e["causation_id"] is None for e in envelopes)
    for envelope in envelopes:
        REGISTRY.load_incoming(envelope)  # what a consumer accepts
    sku_1 = next(e["data"] for e in envelopes if e["data"].get("sku") == "SKU-1")
    # The data of a live item.updated for the same state: the same builder.
    inv.as_().patch_json("/v1/items/SKU-1", {"name": "Item one, again"}, status=200)
    live = orjson.loads(
        rows(inv, "SELECT payload FROM outbox WHERE event_type = 'item.updated' ORDER BY id DESC LIMIT 1")[0][
            "payload"
        ]
    )["data"]
    assert set(live) == set(sku_1)
    assert {**sku_1, "name": "Item one, again", "version": sku_1["version"] + 1} == live


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["inventory", "--snapshot", "--since", "1h", *TO],
            "--snapshot sends the current state: it takes no --since or --until",
        ),
        (
            ["inventory", "--snapshot", "--until", "2026-01-01", *TO],
            "--snapshot sends the current state: it takes no --since or --until",
        ),
        (["inventory", *TO], "Missing option '--since' (or --snapshot, to send the current state)"),
        (
            ["shipping", "--snapshot", "--to", "support.shipment_view"],
            "shipping declares no snapshots; replay its outbox with --since instead",
        ),
        (
            ["inventory", "--snapshot", *TO, "--type", "item.created"],
            "inventory makes no item.created snapshot; it snapshots: warehouse.updated, item.updated",
        ),
        (
            ["inventory", "--snapshot", *TO, "--type", "stock.reserved"],
            "shipping.catalogue does not take stock.reserved",
        ),
        (
            ["inventory", "--snapshot", "--to", "shipping.stock_reserved"],
            "shipping.stock_reserved takes none of inventory's snapshot events "
            "(warehouse.updated, item.updated)",
        ),
        (
            ["inventory", "--snapshot", "--to", "support.tickets"],
            "'support.tickets' consumes no inventory events",
        ),
    ],
)
def test_bad_snapshot_arguments_are_one_clear_line(argv, message, tmp_path):
    result = CliRunner(env={"LOGISTICS_VAR_DIR": str(tmp_path)}).invoke(main, ["replay", *argv])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())

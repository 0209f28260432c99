"""The previous release's code keeps working on the current head schema (expand/contract).

During a rolling deploy the old pods serve on the schema the new release's migrate
Job has just written, and after a rollback they serve on it for as long as it
takes: rollbacks never run ``downgrade`` against the shared database. So, per
service: find in git the newest commit whose migration head is the one before the
current head, export its code, migrate a fresh PostgreSQL database to the current
head with today's ``logistics migrate``, start the old web process on it, and
drive its main reads and writes over HTTP. Each call answers the 2xx the old
release's own ``/openapi.json`` documents; its ``/readyz`` counts the newer
revision as "past head" (ready), which is what lets the rollout proceed; and the
database is still at the current head afterwards (nothing downgraded it).

Full git history is required (``tests/helpers/old_revision.py``): a shallow clone fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from logistics_shared.db import make_engine
from logistics_shared.identity import Role
from logistics_shared.migrations import schema_state
from logistics_shared.security import load_keyring, mint_token
from logistics_shared.service import discover

from ..conftest import JWT_SECRET, _pg, make_settings
from ..helpers.old_revision import (
    REPO,
    HistoryUnavailable,
    OldApp,
    Release,
    clean_environ,
    export,
    previous_release,
    require_full_history,
)
from ..services import PG_URL, need_postgres

#: Real processes (the old web process, git, the CLI), so not a unit test.
pytestmark = pytest.mark.e2e

ADDRESS = {"name": "Main warehouse", "line1": "Dock 1", "city": "Rotterdam", "country": "NL"}


@pytest.fixture(scope="module")
def old_trees(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Release], Path]:
    """One export per commit (the three services' previous releases may share one)."""
    root = tmp_path_factory.mktemp("old-releases")
    made: dict[str, Path] = {}

    def get(release: Release) -> Path:
        if release.commit not in made:
            made[release.commit] = export(release.commit, root / release.commit[:12])
        return made[release.commit]

    return get


@pytest.fixture
def fresh_database() -> Iterator[Callable[[str], str]]:
    need_postgres()
    names: list[str] = []

    def make(service: str) -> str:
        name = f"xc_{service}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _pg(f'CREATE DATABASE "{name}"')
        names.append(name)
        return f"{PG_URL.rstrip('/')}/{name}"

    yield make
    for name in names:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate_with_current_code(service: str, url: str, workdir: Path) -> None:
    """``logistics migrate <svc>`` from this checkout's installed CLI (what the migrate Job runs)."""
    cli = Path(sys.executable).with_name("logistics")
    env = clean_environ(
        **{
            f"LOGISTICS_{service.upper()}_DATABASE_URL": url,
            "LOGISTICS_JWT_SECRET": JWT_SECRET,
            "LOGISTICS_VAR_DIR": str(workdir / "var-current"),
        }
    )
    done = subprocess.run(
        [str(cli), "migrate", service], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"logistics migrate {service}: {done.stdout}\n{done.stderr}"


def _alembic_version(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}


# --- what each service's old release is asked to do --------------------------------------


@dataclass
class Call:
    method: str
    #: The OpenAPI path template the call must be documented under.
    template: str
    path: str | Callable[[dict[str, Any]], str]
    body: Any = None
    status: int = 200
    #: Saves something from the answer for later calls (``seen``).
    keep: Callable[[dict[str, Any], Any], None] | None = None
    headers: Callable[[dict[str, Any]], dict[str, str]] | None = None
    check: Callable[[Any, dict[str, Any]], None] | None = None
    idempotent: bool = False


def _put(key: str, attribute: str) -> Callable[[dict[str, Any], Any], None]:
    def keep(seen: dict[str, Any], body: Any) -> None:
        seen[key] = body[attribute]

    return keep


def _stock(on_hand: int, reserved: int) -> Callable[[Any, dict[str, Any]], None]:
    def check(body: Any, seen: dict[str, Any]) -> None:
        (level,) = body["items"]
        assert (level["on_hand"], level["reserved"]) == (on_hand, reserved), level

    return check


INVENTORY = [
    Call(
        "POST",
        "/v1/warehouses",
        "/v1/warehouses",
        {"code": "AMS", "name": "Amsterdam", "address": ADDRESS},
        201,
    ),
    Call("GET", "/v1/warehouses/{code}", "/v1/warehouses/AMS"),
    Call(
        "POST",
        "/v1/items",
        "/v1/items",
        {
            "sku": "SKU-1",
            "name": "Item 1",
            "unit_weight_g": 250,
            "length_mm": 100,
            "width_mm": 50,
            "height_mm": 20,
            "reorder_point": 3,
        },
        201,
    ),
    Call("GET", "/v1/items/{sku}", "/v1/items/SKU-1"),
    Call(
        "POST",
        "/v1/receipts",
        "/v1/receipts",
        {"warehouse": "AMS", "sku": "SKU-1", "quantity": 7},
        201,
        idempotent=True,
    ),
    Call(
        "POST",
        "/v1/reservations",
        "/v1/reservations",
        {"warehouse": "AMS", "reference": "SO-1", "lines": [{"sku": "SKU-1", "quantity": 2}]},
        201,
        keep=_put("reservation", "id"),
    ),
    Call("GET", "/v1/reservations/{id}", lambda seen: f"/v1/reservations/{seen['reservation']}"),
    Call("GET", "/v1/stock", "/v1/stock?sku=SKU-1&warehouse=AMS", check=_stock(on_hand=7, reserved=2)),
    Call("GET", "/v1/movements", "/v1/movements?sku=SKU-1"),
]

RATE_TABLE = {
    "currency": "EUR",
    "dim_divisor": 5000,
    "zones": [{"name": "nl", "countries": ["NL"]}],
    "weight_bands": [{"max_g": 2000, "prices": {"nl": 495}}, {"max_g": 10000, "prices": {"nl": 795}}],
}

SHIPPING = [
    Call(
        "POST",
        "/v1/carriers",
        "/v1/carriers",
        {"code": "POSTNL", "name": "PostNL", "webhook_secret": "whsec-0123456789-abcdefghij"},
        201,
    ),
    Call(
        "POST",
        "/v1/carriers/{code}/services",
        "/v1/carriers/POSTNL/services",
        {"code": "standard", "name": "Standard", "rate_table": RATE_TABLE},
        201,
    ),
    Call("GET", "/v1/carriers/{code}", "/v1/carriers/POSTNL"),
    Call("GET", "/v1/carriers", "/v1/carriers"),
    Call(
        "POST",
        "/v1/shipments",
        "/v1/shipments",
        {
            "reference": "ORDER-1",
            "warehouse": "AMS",
            "ship_to": ADDRESS,
            "lines": [{"sku": "SKU-1", "quantity": 2}],
            "parcels": [{"weight_g": 1200, "length_mm": 200, "width_mm": 150, "height_mm": 100}],
        },
        201,
        keep=_put("shipment", "id"),
        idempotent=True,
    ),
    Call("GET", "/v1/shipments/{id}", lambda seen: f"/v1/shipments/{seen['shipment']}"),
    Call("GET", "/v1/shipments", "/v1/shipments?warehouse=AMS"),
    Call("POST", "/v1/shipments/{id}/cancel", lambda seen: f"/v1/shipments/{seen['shipment']}/cancel", {}),
]


def _if_match(seen: dict[str, Any]) -> dict[str, str]:
    return {"If-Match": seen["etag"]}


SUPPORT = [
    Call(
        "POST",
        "/v1/tickets",
        "/v1/tickets",
        {"subject": "Where is my parcel?", "description": "Ordered last week.", "priority": "normal"},
        201,
        keep=_put("ticket", "id"),
        idempotent=True,
    ),
    Call("GET", "/v1/tickets/{id}", lambda seen: f"/v1/tickets/{seen['ticket']}"),
    Call(
        "POST",
        "/v1/tickets/{id}/comments",
        lambda seen: f"/v1/tickets/{seen['ticket']}/comments",
        {"body": "On its way", "visibility": "public"},
        201,
    ),
    Call("GET", "/v1/tickets/{id}/comments", lambda seen: f"/v1/tickets/{seen['ticket']}/comments"),
    # The comment moved the ticket's version on: the ETag for If-Match is this answer's.
    Call("GET", "/v1/tickets/{id}", lambda seen: f"/v1/tickets/{seen['ticket']}"),
    Call(
        "PATCH",
        "/v1/tickets/{id}",
        lambda seen: f"/v1/tickets/{seen['ticket']}",
        {"priority": "high"},
        headers=_if_match,
    ),
    Call("GET", "/v1/tickets", "/v1/tickets"),
    Call("GET", "/v1/sla-policies", "/v1/sla-policies"),
]

CALLS = {"inventory": INVENTORY, "shipping": SHIPPING, "support": SUPPORT}

#: Tables the old code's writes must have reached (the outbox: the newest migrations of all
#: three services add a NOTIFY trigger on it, which the old code's INSERTs now fire).
WRITTEN = {
    "inventory": ("warehouses", "items", "movements", "reservations", "outbox", "idempotency_keys"),
    "shipping": ("carriers", "carrier_services", "shipments", "outbox", "idempotency_keys"),
    "support": ("tickets", "ticket_comments", "outbox", "idempotency_keys"),
}


@dataclass
class Drive:
    app: OldApp
    token: str
    spec: dict[str, Any]
    seen: dict[str, Any] = field(default_factory=dict)

    def run(self, call: Call) -> None:
        path = call.path(self.seen) if callable(call.path) else call.path
        headers = {"Authorization": f"Bearer {self.token}"}
        if call.idempotent:
            headers["Idempotency-Key"] = f"xc-{uuid.uuid4().hex}"
        if call.headers is not None:
            headers.update(call.headers(self.seen))
        answer = self.app.request(call.method, path, call.body, headers)
        label = f"old {self.app.service}: {call.method} {path}"
        assert answer.status == call.status, f"{label} -> {answer.status} {answer.body}\n{self.app.output()}"
        documented = self.spec["paths"][call.template][call.method.lower()]["responses"]
        assert str(answer.status) in documented, f"{label}: {answer.status} not in {sorted(documented)}"
        if "etag" in answer.headers:
            self.seen["etag"] = answer.headers["etag"]
        if call.keep is not None:
            call.keep(self.seen, answer.body)
        if call.check is not None:
            call.check(answer.body, self.seen)


@pytest.mark.postgres
@pytest.mark.parametrize("service", sorted(CALLS))
def test_the_previous_release_serves_on_the_current_head_schema(
    service: str,
    old_trees: Callable[[Release], Path],
    fresh_database: Callable[[str], str],
    tmp_path: Path,
) -> None:
    try:
        release = previous_release(service)
    except HistoryUnavailable as exc:
        pytest.fail(f"cannot find {service}'s previous release: {exc}", pytrace=False)
    assert release.head != release.current_head
    tree = old_trees(release)

    url = fresh_database(service)
    app = OldApp(tree, service, url, JWT_SECRET, tmp_path / "old")
    try:
        # As in a rollout: the old process is up while today's migrate Job runs.
        app.launch()
        _migrate_with_current_code(service, url, tmp_path)
        assert _alembic_version(url) == {release.current_head}
        app.wait_until_serving()
        # The old release's code answered, not today's: the service, the shared library and
        # the migration scripts all come from the exported tree.
        assert Path(app.imported["service"]).is_relative_to(tree / "services" / service), app.imported
        assert Path(app.imported["logistics_shared"]).is_relative_to(tree / "shared"), app.imported
        assert Path(app.imported["migrations"]).is_relative_to(tree), app.imported
        stray = {
            name: where
            for name, where in app.imported["loaded"].items()
            if where and not Path(where).is_relative_to(tree)
        }
        assert not stray, f"modules imported from outside the old tree: {stray}"

        # Ready: the old code sees a revision it does not know and counts it as past its head.
        ready = app.request("GET", "/readyz")
        assert ready.status == 200, ready.body
        assert ready.body["status"] == "ready", ready.body
        assert ready.body["schema"] == {"current": release.current_head, "head": release.head}, ready.body

        # Its pods' initContainer, after a rollback, lets them start on this schema too (a
        # release older than the gate has no such command, and no initContainer either).
        if app.has_command("wait-for-schema"):
            gate = app.cli("wait-for-schema", service, "--timeout", "20")
            assert gate.returncode == 0, f"old wait-for-schema {service}: {gate.stdout}{gate.stderr}"

        spec = app.request("GET", "/openapi.json")
        assert spec.status == 200, spec.body
        token = mint_token(
            load_keyring(make_settings(service, url, tmp_path)), role=Role.ADMIN, subject="xc-admin"
        )
        drive = Drive(app, token, spec.body)
        for call in CALLS[service]:
            drive.run(call)
    finally:
        app.stop()

    assert app.proc is not None and app.proc.returncode == 0, f"old {service} exit {app.proc}\n{app.output()}"
    with psycopg.connect(url) as conn:
        empty = [t for t in WRITTEN[service] if conn.execute(f"SELECT count(*) FROM {t}").fetchone() == (0,)]
    assert not empty, f"the old {service}'s writes did not reach {empty}"
    # A rollback is this same situation, and it never downgrades: the schema is still at head.
    assert _alembic_version(url) == {release.current_head}

    # Today's code, too, is ready on this database; and on a schema past its head (the next
    # release migrated, then was rolled back to this one): "at or past head" is migrated.
    settings = make_settings(service, url, tmp_path)
    engine = make_engine(settings)
    try:
        current_spec = discover()[service]
        state = schema_state(current_spec, engine)
        assert state.migrated and state.current == state.head == release.current_head, state
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'xc_next_release'"))
        state = schema_state(current_spec, engine)
        assert state.migrated and state.current == "xc_next_release", state
    finally:
        engine.dispose()


def test_a_shallow_clone_is_an_error_not_a_skip(tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(clone)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with pytest.raises(HistoryUnavailable, match="shallow clone"):
        require_full_history(clone)
    with pytest.raises(HistoryUnavailable, match=r"not a git work tree|failed"):
        require_full_history(tmp_path)

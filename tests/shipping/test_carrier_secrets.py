"""Carriers' webhook secrets are stored encrypted (Fernet) and still verify their webhooks;
migration 0009 encrypts the secrets of carriers created before it, and its downgrade
decrypts those created after."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from logistics_shared.db import database_url
from logistics_shared.migrations import alembic_config, upgrade
from logistics_shared.secretbox import SecretBox, parse_keys
from logistics_shared.settings import SettingsError

from ..conftest import SECRETS_KEY, make_settings
from ..helpers.shipping import CARRIER, SECRET, event, labelled, post


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def stored(client, code: str = "POSTNL"):
    with client.engine.connect() as conn:
        return conn.execute(
            text("SELECT webhook_secret, webhook_secret_encrypted FROM carriers WHERE code = :code"),
            {"code": code},
        ).one()


def test_the_stored_secret_is_a_token_not_the_plaintext(ship):
    ship.as_().post_json("/v1/carriers", CARRIER, status=201)
    row = stored(ship)
    assert row.webhook_secret is None
    assert SECRET not in row.webhook_secret_encrypted
    assert ship.registry["logistics.secretbox"].decrypt(row.webhook_secret_encrypted) == SECRET
    # Under the key of the settings (tests/conftest.py's), through the app registry's box.
    assert SecretBox(parse_keys(SECRETS_KEY)).decrypt(row.webhook_secret_encrypted) == SECRET


def test_a_carrier_webhook_verifies_with_the_encrypted_secret(ship):
    _, number = labelled(ship)
    assert stored(ship).webhook_secret is None
    assert post(ship, event(number)).json["result"] == "accepted"
    post(ship, event(number, "ev-2"), secret="not-the-secret", status=401)


def test_a_carrier_the_previous_release_created_verifies_with_its_plaintext(ship):
    # During a rollout an old replica writes the plaintext column only.
    _, number = labelled(ship)
    with ship.engine.connect() as conn:
        conn.execute(
            text(
                "UPDATE carriers SET webhook_secret = :secret, webhook_secret_encrypted = NULL "
                "WHERE code = 'POSTNL'"
            ),
            {"secret": SECRET},
        )
    assert post(ship, event(number)).json["result"] == "accepted"
    post(ship, event(number, "ev-2"), secret="not-the-secret", status=401)


def test_a_secret_no_key_opens_refuses_the_carrier_and_says_why_in_the_log(ship, caplog):
    _, number = labelled(ship)
    foreign = SecretBox([Fernet(Fernet.generate_key())]).encrypt(SECRET)
    with ship.engine.connect() as conn:
        conn.execute(
            text("UPDATE carriers SET webhook_secret_encrypted = :token WHERE code = 'POSTNL'"),
            {"token": foreign},
        )
    with caplog.at_level(logging.ERROR, logger="shipping.domain.webhooks"):
        res = post(ship, event(number), status=401)
    assert res.json["detail"] == "The webhook signature is missing, wrong or stale."
    assert any(
        "POSTNL" in r.getMessage() and "LOGISTICS_SECRETS_KEY" in r.getMessage() for r in caplog.records
    )


# --- migration 0009 ----------------------------------------------------------------------


def _url(backend: str, tmp_path: Path, pg_database) -> str:
    return f"sqlite:///{tmp_path}/shipping.sqlite3" if backend == "sqlite" else pg_database()


@pytest.fixture
def pg_database(request, worker_tag):
    """An empty PostgreSQL database (not the migrated template: this test migrates it)."""
    from ..conftest import _pg
    from ..services import PG_URL, need_postgres

    names: list[str] = []

    def make() -> str:
        need_postgres()
        name = f"lt_shipping_{worker_tag}_secrets_{len(names)}"
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg(f'CREATE DATABASE "{name}"')
        names.append(name)
        return f"{PG_URL}/{name}"

    yield make
    for name in names:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


NEW_STYLE = (
    "INSERT INTO carriers (code, name, tracking_prefix, webhook_secret_encrypted, created_at) "
    "VALUES ('NEW', 'NEW', 'NW', :token, CURRENT_TIMESTAMP)"
)
INSERT_OLD = (
    "INSERT INTO carriers (code, name, tracking_prefix, webhook_secret, created_at) "
    "VALUES (:code, :code, 'XX', :secret, CURRENT_TIMESTAMP)"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_0009_encrypts_existing_secrets_and_its_downgrade_decrypts_new_ones(
    backend, specs, tmp_path, pg_database
):
    from alembic import command

    spec = specs["shipping"]
    settings = make_settings("shipping", _url(backend, tmp_path, pg_database), tmp_path)
    box = SecretBox.from_settings(settings)
    upgrade(spec, settings, "0008")
    engine = create_engine(database_url(settings.database_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(INSERT_OLD),
                [{"code": "OLD1", "secret": "old-secret-1"}, {"code": "OLD2", "secret": "s2"}],
            )
        upgrade(spec, settings)
        with engine.begin() as conn:
            rows = {r.code: r for r in conn.execute(text("SELECT * FROM carriers ORDER BY code"))}
            # The previous release still reads the plaintext; this one reads the token.
            assert rows["OLD1"].webhook_secret == "old-secret-1"
            assert box.decrypt(rows["OLD1"].webhook_secret_encrypted) == "old-secret-1"
            assert box.decrypt(rows["OLD2"].webhook_secret_encrypted) == "s2"
            # A carrier this release creates: the token only.
            conn.execute(
                text(NEW_STYLE),
                {"token": box.encrypt("new-secret")},
            )
        command.downgrade(alembic_config(spec, settings), "0008")
        with engine.begin() as conn:
            plain = dict(conn.execute(text("SELECT code, webhook_secret FROM carriers")).all())
        assert plain == {"OLD1": "old-secret-1", "OLD2": "s2", "NEW": "new-secret"}
    finally:
        engine.dispose()


def test_0009_needs_the_key_only_when_there_is_something_to_encrypt(specs, tmp_path, pg_database):
    spec = specs["shipping"]
    keyless = make_settings("shipping", pg_database(), tmp_path, secrets_key="")
    upgrade(spec, keyless)  # a fresh database: nothing to encrypt, no key needed

    other = make_settings("shipping", pg_database(), tmp_path, secrets_key="")
    upgrade(spec, other, "0008")
    engine = create_engine(database_url(other.database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text(INSERT_OLD), {"code": "OLD", "secret": "old-secret"})
    finally:
        engine.dispose()
    with pytest.raises(SettingsError, match="LOGISTICS_SECRETS_KEY"):
        upgrade(spec, other)

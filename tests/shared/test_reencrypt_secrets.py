"""``logistics reencrypt-secrets <svc>``: after a key rotation every stored secret (webhook
endpoints', carriers') opens with the new key alone, so the old one can be dropped."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import select

from logistics_shared.cli import main
from logistics_shared.secretbox import SecretBox, UndecryptableSecret

from ..conftest import JWT_SECRET
from ..helpers.shipping import CARRIER, SECRET


@pytest.mark.fresh_app  # real commits: the command is another connection
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_after_reencrypting_the_old_key_can_go(service_client, backend, tmp_path):
    shipping = service_client("shipping", backend)
    old_key = shipping.settings.secrets_key
    admin = shipping.as_()
    admin.post_json("/v1/carriers", CARRIER, status=201)
    hook = {"url": "https://hooks.example.com/a", "event_types": ["shipment.*"]}
    endpoint = admin.post_json("/v1/shipping/webhook-endpoints", hook, status=201).json
    admin.post_json(
        f"/v1/shipping/webhook-endpoints/{endpoint['id']}/rotate-secret", {}
    )  # a previous_secret too
    new_key = Fernet.generate_key().decode()
    env = {
        "LOGISTICS_SHIPPING_DATABASE_URL": shipping.settings.database_url,
        "LOGISTICS_SECRETS_KEY": f"{new_key},{old_key}",
        "LOGISTICS_JWT_SECRET": JWT_SECRET,
        "LOGISTICS_VAR_DIR": str(tmp_path),
    }
    result = CliRunner(env=env).invoke(main, ["reencrypt-secrets", "shipping"])
    assert result.exit_code == 0, result.output
    assert "webhook_endpoints.secret: 1 re-encrypted" in result.output
    assert "webhook_endpoints.previous_secret: 1 re-encrypted" in result.output
    assert "carriers.webhook_secret_encrypted: 1 re-encrypted" in result.output

    new_only, old_only = SecretBox([Fernet(new_key)]), SecretBox([Fernet(old_key)])
    tables = shipping.registry["logistics.platform_tables"].webhooks
    from shipping.models import carriers

    with shipping.engine.connect() as conn:
        tokens = [
            *conn.execute(select(tables.endpoints.c.secret, tables.endpoints.c.previous_secret)).one(),
            conn.execute(select(carriers.c.webhook_secret_encrypted)).scalar_one(),
        ]
    assert new_only.decrypt(tokens[2]) == SECRET
    for token in tokens:
        new_only.decrypt(token)  # opens with the new key alone
        with pytest.raises(UndecryptableSecret):
            old_only.decrypt(token)
    # Again: nothing left to change that matters, and nothing breaks.
    assert CliRunner(env=env).invoke(main, ["reencrypt-secrets", "shipping"]).exit_code == 0


def test_a_service_without_stored_secrets_says_so(tmp_path):
    env = {
        "LOGISTICS_VAR_DIR": str(tmp_path),
        "LOGISTICS_INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path}/i.db",
    }
    runner = CliRunner(env=env)
    assert runner.invoke(main, ["migrate", "inventory"]).exit_code == 0
    result = runner.invoke(main, ["reencrypt-secrets", "inventory"])
    assert result.exit_code == 0, result.output
    assert "inventory stores no secrets" in result.output

from __future__ import annotations

import pytest

from logistics_shared.settings import SPECS, SettingsError, env_name, load_settings


def test_defaults_then_ini_then_environment():
    assert load_settings("inventory", {}, {}).max_body_bytes == 1_048_576
    assert load_settings("inventory", {"logistics.max_body_bytes": "2048"}, {}).max_body_bytes == 2048
    settings = load_settings(
        "inventory", {"logistics.max_body_bytes": "2048"}, {"LOGISTICS_MAX_BODY_BYTES": "4096"}
    )
    assert settings.max_body_bytes == 4096


def test_database_url_is_per_service_and_defaults_to_sqlite_under_var():
    assert (
        load_settings("shipping", {"var_dir": "/data"}, {}).database_url == "sqlite:////data/shipping.sqlite3"
    )
    env = {"LOGISTICS_SHIPPING_DATABASE_URL": "postgresql://db/shipping"}
    assert load_settings("shipping", {}, env).database_url == "postgresql://db/shipping"
    assert load_settings("support", {}, env).database_url.startswith("sqlite")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOGISTICS_MAX_BODY_BYTES": "lots"}, "LOGISTICS_MAX_BODY_BYTES"),
        ({"LOGISTICS_ACCESS_LOG": "maybe"}, "LOGISTICS_ACCESS_LOG"),
        ({"LOGISTICS_INVENTORY_DATABASE_URL": "mysql://x/y"}, "LOGISTICS_INVENTORY_DATABASE_URL"),
        ({"LOGISTICS_LOG_FORMAT": "xml"}, "LOGISTICS_LOG_FORMAT"),
        ({"LOGISTICS_JWT_ALGORITHM": "RS256"}, "LOGISTICS_JWT_PUBLIC_KEY_FILE"),
        ({"LOGISTICS_DB_POOL_SIZE": "0"}, "db_pool_size"),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_it(env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings("inventory", {}, env)


def test_postgres_deployments_must_set_the_jwt_secret(tmp_path):
    from logistics_shared.settings import jwt_secret

    settings = load_settings("inventory", {}, {"LOGISTICS_INVENTORY_DATABASE_URL": "postgresql://db/x"})
    with pytest.raises(SettingsError, match="LOGISTICS_JWT_SECRET"):
        jwt_secret(settings)
    embedded = load_settings("inventory", {"var_dir": str(tmp_path)}, {})
    first = jwt_secret(embedded)
    assert first == jwt_secret(embedded), "generated once, then reused"
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for spec in SPECS:
        assert (
            env_name(spec, "inventory").replace("INVENTORY", "<SVC>") in readme
            or env_name(spec, "inventory") in readme
        ), spec.key

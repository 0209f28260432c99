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
        ({"LOGISTICS_JWT_MAX_TTL_SECONDS": "a day"}, "LOGISTICS_JWT_MAX_TTL_SECONDS"),
        ({"LOGISTICS_JWT_MAX_TTL_SECONDS": "0"}, "LOGISTICS_JWT_MAX_TTL_SECONDS"),
        ({"LOGISTICS_WAITRESS_CONNECTION_LIMIT": "0"}, "LOGISTICS_WAITRESS_CONNECTION_LIMIT"),
        ({"LOGISTICS_WAITRESS_CHANNEL_TIMEOUT": "soon"}, "LOGISTICS_WAITRESS_CHANNEL_TIMEOUT"),
        ({"LOGISTICS_WAITRESS_CLEANUP_INTERVAL": "-1"}, "LOGISTICS_WAITRESS_CLEANUP_INTERVAL"),
        ({"LOGISTICS_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/8"}, "LOGISTICS_WEBHOOK_ALLOW_NETWORKS"),
        ({"LOGISTICS_WEBHOOK_ALLOW_NETWORKS": "loopback"}, "LOGISTICS_WEBHOOK_ALLOW_NETWORKS"),
        ({"LOGISTICS_WEBHOOK_RETRY_SCHEDULE": "5,soon"}, "LOGISTICS_WEBHOOK_RETRY_SCHEDULE"),
        ({"LOGISTICS_WEBHOOK_RETRY_SCHEDULE": "0"}, "LOGISTICS_WEBHOOK_RETRY_SCHEDULE"),
        ({"LOGISTICS_WEBHOOK_READ_TIMEOUT": "0"}, "webhook_read_timeout"),
        ({"LOGISTICS_WEBHOOK_ALLOW_HTTP": "perhaps"}, "LOGISTICS_WEBHOOK_ALLOW_HTTP"),
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


@pytest.mark.parametrize(
    "secret",
    [
        "short",
        "x" * 31,
        # 16 characters, 32 bytes would pass; 15 are 30 bytes: the rule counts bytes.
        "é" * 15,
    ],
)
@pytest.mark.parametrize("source", ["environ", "ini"])
def test_a_short_hs256_secret_stops_start_up_naming_the_setting(secret, source):
    ini, env = ({}, {"LOGISTICS_JWT_SECRET": secret}) if source == "environ" else ({"jwt_secret": secret}, {})
    with pytest.raises(SettingsError, match=r"LOGISTICS_JWT_SECRET.*at least 32"):
        load_settings("inventory", ini, env)


@pytest.mark.parametrize("secret", ["x" * 32, "é" * 16])
def test_a_32_byte_secret_is_enough(secret):
    assert load_settings("inventory", {}, {"LOGISTICS_JWT_SECRET": secret}).jwt_secret == secret


def test_asymmetric_algorithms_ignore_the_hs256_secret(tmp_path):
    public = tmp_path / "jwt.pub"
    public.write_text("unused here")
    env = {"LOGISTICS_JWT_ALGORITHM": "EdDSA", "LOGISTICS_JWT_PUBLIC_KEY_FILE": str(public)}
    assert load_settings("inventory", {}, {**env, "LOGISTICS_JWT_SECRET": "short"}).jwt_algorithm == "EdDSA"


def test_the_generated_secret_is_long_enough_and_a_truncated_file_is_refused(tmp_path):
    from logistics_shared.settings import MIN_HS256_SECRET_BYTES, jwt_secret

    embedded = load_settings("inventory", {"var_dir": str(tmp_path)}, {})
    assert len(jwt_secret(embedded).encode()) >= MIN_HS256_SECRET_BYTES
    (tmp_path / "jwt-secret").write_text("abc\n")
    with pytest.raises(SettingsError, match="jwt-secret"):
        jwt_secret(embedded)


def test_lifetime_cap_and_waitress_limits_default_and_override():
    defaults = load_settings("inventory", {}, {})
    assert (defaults.jwt_max_ttl_seconds, defaults.waitress_connection_limit) == (86400, 1000)
    assert (defaults.waitress_channel_timeout, defaults.waitress_cleanup_interval) == (30, 10)
    env = {
        "LOGISTICS_JWT_MAX_TTL_SECONDS": "3600",
        "LOGISTICS_WAITRESS_CONNECTION_LIMIT": "2000",
        "LOGISTICS_WAITRESS_CHANNEL_TIMEOUT": "15",
        "LOGISTICS_WAITRESS_CLEANUP_INTERVAL": "5",
    }
    changed = load_settings("inventory", {}, env)
    assert (changed.jwt_max_ttl_seconds, changed.waitress_connection_limit) == (3600, 2000)
    assert (changed.waitress_channel_timeout, changed.waitress_cleanup_interval) == (15, 5)


def test_every_setting_is_documented_in_the_readme():
    """Shared settings and every installed service's own, from their one declaration."""
    from pathlib import Path

    from logistics_shared.service import discover
    from logistics_shared.settings import specs

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    declared = [("shared", spec) for spec in SPECS]
    for name, service in discover().items():
        assert service.settings is not None, f"{name} declares no settings of its own"
        declared += [(name, spec) for spec in specs(service.settings)]
    for owner, spec in declared:
        assert (
            env_name(spec, "inventory").replace("INVENTORY", "<SVC>") in readme
            or env_name(spec, "inventory") in readme
        ), f"{owner}: {spec.key}"


def test_a_service_setting_never_shadows_a_shared_one():
    from logistics_shared.service import discover
    from logistics_shared.settings import specs

    shared = {spec.key for spec in SPECS}
    for name, service in discover().items():
        own = {spec.key for spec in specs(service.settings)} if service.settings else set()
        assert not own & shared, f"{name} redeclares {sorted(own & shared)}"

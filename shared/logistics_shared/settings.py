"""Typed settings, read in one place: built-in defaults < ``.ini`` < environment.

Every service and every process kind (web, worker, CLI) builds its
:class:`Settings` through :func:`load_settings`, so a setting means the same
thing everywhere and a bad value stops start-up with a message naming it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A required setting is missing or a value cannot be parsed."""


def _to_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false), got {raw!r}")


def _to_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _to_float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def _to_str(raw: str) -> str:
    return raw.strip()


@dataclass(frozen=True)
class Spec:
    """How one setting is named, typed and defaulted."""

    key: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    # ``{svc}`` is replaced by the upper-cased service name.
    env: str


def _spec(key: str, parse: Callable[[str], Any], default: Any, help: str, env: str = "") -> Spec:
    return Spec(key, parse, default, help, env or f"LOGISTICS_{key.upper()}")


#: Every setting of the suite. README's configuration table mirrors this list
#: (``tests/shared/test_settings.py`` checks that it does).
SPECS: tuple[Spec, ...] = (
    _spec(
        "database_url",
        _to_str,
        None,
        "SQLAlchemy URL of the service's own database; postgresql:// uses psycopg 3. "
        "Default: sqlite file under the var directory.",
        env="LOGISTICS_{svc}_DATABASE_URL",
    ),
    _spec("db_pool_size", _to_int, 10, "Connections kept per web/worker process (>= threads)."),
    _spec("db_max_overflow", _to_int, 10, "Extra connections allowed beyond the pool."),
    _spec("db_connect_timeout", _to_int, 3, "Seconds before a database connect gives up (-> 503)."),
    _spec("db_statement_timeout_ms", _to_int, 15000, "PostgreSQL statement timeout per request."),
    _spec("broker_url", _to_str, "memory://", "Kombu broker URL (amqp:// for RabbitMQ)."),
    _spec("redis_url", _to_str, "", "Redis URL for the shared cache; empty disables it."),
    _spec("var_dir", _to_str, "var", "Directory for embedded SQLite files and generated keys."),
    _spec("jwt_secret", _to_str, "", "HS256 signing secret (required unless key files are set)."),
    _spec("jwt_algorithm", _to_str, "HS256", "HS256, RS256 or EdDSA."),
    _spec("jwt_public_key_file", _to_str, "", "PEM public key for RS256/EdDSA verification."),
    _spec("jwt_private_key_file", _to_str, "", "PEM private key, only where tokens are minted."),
    _spec("jwt_issuer", _to_str, "logistics", "Expected `iss` claim."),
    _spec("jwt_audience", _to_str, "logistics", "Expected `aud` claim."),
    _spec("jwt_leeway_seconds", _to_int, 30, "Clock skew tolerated on `exp`."),
    _spec(
        "jwt_max_ttl_seconds",
        _to_int,
        86400,
        "Longest token lifetime minted or accepted: `exp` further ahead than now + this (+ leeway) is a 401.",
    ),
    _spec("max_body_bytes", _to_int, 1_048_576, "Largest request body the API reads (-> 413)."),
    _spec(
        "waitress_connection_limit",
        _to_int,
        1000,
        "Open connections one waitress server holds before it stops accepting (waitress: 100).",
    ),
    _spec(
        "waitress_channel_timeout",
        _to_int,
        30,
        "Seconds waitress keeps a connection with no activity and no request running (waitress: 120).",
    ),
    _spec(
        "waitress_cleanup_interval",
        _to_int,
        10,
        "Seconds between waitress's sweeps for connections past the channel timeout (waitress: 30).",
    ),
    _spec("log_level", _to_str, "INFO", "Root log level."),
    _spec("log_format", _to_str, "json", "`json` (one object per line) or `text`."),
    _spec("access_log", _to_bool, True, "Log one line per request."),
    _spec("reservation_sweep_seconds", _to_float, 5.0, "How often expired reservations are swept."),
    _spec("sla_sweep_seconds", _to_float, 60.0, "How often the support worker looks for SLA breaches."),
    _spec("bus_namespace", _to_str, "logistics", "Prefix of every exchange and queue name."),
    _spec("bus_prefetch", _to_int, 32, "Unacked messages a consumer may hold (prefetch count)."),
    _spec("bus_max_attempts", _to_int, 5, "Handler attempts before a message is dead-lettered."),
    _spec("bus_retry_delays", _to_str, "1,5,30", "Seconds between attempts (comma list; the last repeats)."),
    _spec("bus_confirm_timeout", _to_float, 5.0, "Seconds to wait for publisher confirms of a batch."),
    _spec("bus_heartbeat", _to_int, 20, "AMQP heartbeat interval in seconds (0 disables)."),
    _spec("outbox_batch_size", _to_int, 200, "Outbox rows the relay claims and confirms per batch."),
    _spec("outbox_poll_seconds", _to_float, 1.0, "Relay poll interval when no notification arrives."),
    _spec("outbox_retention_hours", _to_float, 168.0, "Published outbox rows older than this are deleted."),
    _spec("worker_health_port", _to_int, 0, "Worker health/metrics port (0: the web port + 100)."),
    _spec(
        "shipment_hold_hours", _to_float, 72.0, "How long inventory holds a shipment's stock (0: no expiry)."
    ),
    _spec("cache_local_seconds", _to_float, 2.0, "In-process read cache lifetime (0 disables it)."),
    _spec("cache_shared_seconds", _to_int, 300, "Redis read cache lifetime (needs LOGISTICS_REDIS_URL)."),
)

_SPECS_BY_KEY = {spec.key: spec for spec in SPECS}


@dataclass(frozen=True)
class Settings:
    service: str
    database_url: str
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_connect_timeout: int = 3
    db_statement_timeout_ms: int = 15000
    broker_url: str = "memory://"
    redis_url: str = ""
    var_dir: str = "var"
    jwt_secret: str = ""
    jwt_algorithm: str = "HS256"
    jwt_public_key_file: str = ""
    jwt_private_key_file: str = ""
    jwt_issuer: str = "logistics"
    jwt_audience: str = "logistics"
    jwt_leeway_seconds: int = 30
    jwt_max_ttl_seconds: int = 86400
    max_body_bytes: int = 1_048_576
    waitress_connection_limit: int = 1000
    waitress_channel_timeout: int = 30
    waitress_cleanup_interval: int = 10
    log_level: str = "INFO"
    log_format: str = "json"
    access_log: bool = True
    reservation_sweep_seconds: float = 5.0
    sla_sweep_seconds: float = 60.0
    bus_namespace: str = "logistics"
    bus_prefetch: int = 32
    bus_max_attempts: int = 5
    bus_retry_delays: str = "1,5,30"
    bus_confirm_timeout: float = 5.0
    bus_heartbeat: int = 20
    outbox_batch_size: int = 200
    outbox_poll_seconds: float = 1.0
    outbox_retention_hours: float = 168.0
    worker_health_port: int = 0
    shipment_hold_hours: float = 72.0
    cache_local_seconds: float = 2.0
    cache_shared_seconds: int = 300
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.bus_retry_delays.split(","))


def spec_for(key: str) -> Spec:
    return _SPECS_BY_KEY[key]


def env_name(spec: Spec, service: str) -> str:
    return spec.env.replace("{svc}", service.upper())


def load_settings(
    service: str,
    ini: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults, ``.ini`` values (``logistics.<key>`` or ``<key>``) and environment.

    Raises :class:`SettingsError` naming the setting when a value is malformed
    or a required one is missing.
    """
    ini = dict(ini or {})
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in SPECS:
        source, raw = None, None
        for name in (f"logistics.{spec.key}", spec.key):
            if name in ini and ini[name] is not None:
                source, raw = f"{name} in the .ini file", ini[name]
        name = env_name(spec, service)
        if environ.get(name) not in (None, ""):
            source, raw = f"environment variable {name}", environ[name]
        if raw is None:
            values[spec.key] = spec.default
            continue
        if not isinstance(raw, str):
            values[spec.key] = raw
            continue
        try:
            values[spec.key] = spec.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"setting {spec.key!r} ({source}): {exc}") from None

    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{Path(values['var_dir']) / f'{service}.sqlite3'}"
    _validate(values, service)
    known = {f.name for f in fields(Settings)}
    extra = {k: v for k, v in ini.items() if k not in known and isinstance(v, str)}
    return Settings(service=service, extra=extra, **values)


def _validate(values: dict[str, Any], service: str) -> None:
    url = values["database_url"]
    if not url.split(":", 1)[0].startswith(("sqlite", "postgresql", "postgres")):
        raise SettingsError(
            f"setting 'database_url' ({env_name(_SPECS_BY_KEY['database_url'], service)}): "
            f"unsupported URL scheme in {url.split(':', 1)[0]!r}; use postgresql:// or sqlite:///"
        )
    if values["log_format"] not in {"json", "text"}:
        raise SettingsError("setting 'log_format' (LOGISTICS_LOG_FORMAT): expected json or text")
    if values["jwt_algorithm"] not in {"HS256", "RS256", "EdDSA"}:
        raise SettingsError("setting 'jwt_algorithm' (LOGISTICS_JWT_ALGORITHM): HS256, RS256 or EdDSA")
    if values["jwt_algorithm"] != "HS256" and not values["jwt_public_key_file"]:
        raise SettingsError(
            "setting 'jwt_public_key_file' (LOGISTICS_JWT_PUBLIC_KEY_FILE) is required "
            f"with {values['jwt_algorithm']}"
        )
    if values["jwt_algorithm"] == "HS256" and values["jwt_secret"]:
        _check_secret_length(values["jwt_secret"], "setting 'jwt_secret' (LOGISTICS_JWT_SECRET)")
    for key in (
        "max_body_bytes",
        "jwt_max_ttl_seconds",
        "waitress_connection_limit",
        "waitress_channel_timeout",
        "waitress_cleanup_interval",
        "db_pool_size",
        "db_connect_timeout",
        "bus_prefetch",
        "bus_max_attempts",
        "bus_confirm_timeout",
        "outbox_batch_size",
        "outbox_poll_seconds",
    ):
        if values[key] <= 0:
            raise SettingsError(
                f"setting {key!r} ({env_name(_SPECS_BY_KEY[key], service)}): must be positive"
            )
    try:
        delays = [float(part) for part in values["bus_retry_delays"].split(",")]
    except ValueError:
        delays = []
    if not delays or any(d <= 0 for d in delays):
        raise SettingsError(
            "setting 'bus_retry_delays' (LOGISTICS_BUS_RETRY_DELAYS): a comma list of positive seconds"
        )


#: RFC 7518 3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_HS256_SECRET_BYTES = 32


def _check_secret_length(secret: str, what: str) -> None:
    size = len(secret.encode())
    if size < MIN_HS256_SECRET_BYTES:
        # A short HMAC key can be brute-forced offline from any one token a client holds.
        raise SettingsError(
            f"{what} is {size} bytes; HS256 needs at least {MIN_HS256_SECRET_BYTES} random bytes "
            "(e.g. `openssl rand -base64 48`)"
        )


def jwt_secret(settings: Settings) -> str:
    """The HS256 secret; on the embedded default, generated once under the var directory.

    A real deployment (PostgreSQL) must set it: every replica of every service
    has to verify the same tokens, so a per-machine random key would be wrong.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    if not settings.is_sqlite:
        raise SettingsError(
            "setting 'jwt_secret' (LOGISTICS_JWT_SECRET) is required when the database is "
            "not the embedded SQLite default"
        )
    path = Path(settings.var_dir) / "jwt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting together agree on one key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    secret = path.read_text().strip()
    if not secret:
        raise SettingsError(f"the generated JWT secret file {path} is empty; delete it")
    _check_secret_length(secret, f"the generated JWT secret file {path} (delete it to regenerate)")
    return secret

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


def setting(
    default: Any,
    help: str,
    *,
    env: str = "",
    positive: bool = False,
    choices: tuple[str, ...] = (),
) -> Any:
    """Declare one setting as a dataclass field: its default, what it means, its environment
    variable (default ``LOGISTICS_<KEY>``; ``{svc}`` is the upper-cased service name), and
    simple rules. The field's type (``int``, ``float``, ``str``, ``bool``) is how it parses.

    This is the only declaration of a setting: :func:`specs` reads these fields for
    :func:`load_settings` and for the README check, so nothing repeats them.
    """
    return field(
        default=default, metadata={"help": help, "env": env, "positive": positive, "choices": choices}
    )


@dataclass(frozen=True)
class Spec:
    """How one setting is named, typed and defaulted (read off its :func:`setting` field)."""

    key: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    #: ``{svc}`` is replaced by the upper-cased service name.
    env: str
    positive: bool = False
    choices: tuple[str, ...] = ()


_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "bool": _to_bool,
}


def specs(declared: type) -> tuple[Spec, ...]:
    """The settings a dataclass declares with :func:`setting`, in declaration order."""
    found = []
    for item in fields(declared):
        if "help" not in item.metadata:
            continue
        kind = item.type if isinstance(item.type, str) else item.type.__name__
        found.append(
            Spec(
                key=item.name,
                parse=_PARSERS[kind],
                default=item.default,
                help=item.metadata["help"],
                env=item.metadata["env"] or f"LOGISTICS_{item.name.upper()}",
                positive=item.metadata["positive"],
                choices=item.metadata["choices"],
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class Settings:
    """The settings every service and process kind shares; a service's own settings (its
    ``ServiceSpec.settings`` dataclass, declared the same way) are on :attr:`own`."""

    service: str
    database_url: str = setting(
        "",
        "SQLAlchemy URL of the service's own database; postgresql:// uses psycopg 3. "
        "Default: sqlite file under the var directory.",
        env="LOGISTICS_{svc}_DATABASE_URL",
    )
    db_pool_size: int = setting(10, "Connections kept per web/worker process (>= threads).", positive=True)
    db_max_overflow: int = setting(10, "Extra connections allowed beyond the pool.")
    db_connect_timeout: int = setting(
        3, "Seconds before a database connect gives up (-> 503).", positive=True
    )
    db_statement_timeout_ms: int = setting(15000, "PostgreSQL statement timeout per request.")
    broker_url: str = setting("memory://", "Kombu broker URL (amqp:// for RabbitMQ).")
    redis_url: str = setting("", "Redis URL for the shared cache; empty disables it.")
    var_dir: str = setting("var", "Directory for embedded SQLite files and generated keys.")
    jwt_secret: str = setting("", "HS256 signing secret (required unless key files are set).")
    jwt_algorithm: str = setting("HS256", "HS256, RS256 or EdDSA.", choices=("HS256", "RS256", "EdDSA"))
    jwt_public_key_file: str = setting("", "PEM public key for RS256/EdDSA verification.")
    jwt_private_key_file: str = setting("", "PEM private key, only where tokens are minted.")
    jwt_issuer: str = setting("logistics", "Expected `iss` claim.")
    jwt_audience: str = setting("logistics", "Expected `aud` claim.")
    jwt_leeway_seconds: int = setting(30, "Clock skew tolerated on `exp`.")
    jwt_max_ttl_seconds: int = setting(
        86400,
        "Longest token lifetime minted or accepted: `exp` further ahead than now + this (+ leeway) is a 401.",
        positive=True,
    )
    max_body_bytes: int = setting(1_048_576, "Largest request body the API reads (-> 413).", positive=True)
    waitress_connection_limit: int = setting(
        1000,
        "Open connections one waitress server holds before it stops accepting (waitress: 100).",
        positive=True,
    )
    waitress_channel_timeout: int = setting(
        30,
        "Seconds waitress keeps a connection with no activity and no request running (waitress: 120).",
        positive=True,
    )
    waitress_cleanup_interval: int = setting(
        10,
        "Seconds between waitress's sweeps for connections past the channel timeout (waitress: 30).",
        positive=True,
    )
    web_workers: int = setting(0, "gunicorn worker processes of `logistics serve` (0: one per CPU core).")
    web_threads: int = setting(
        1, "Threads per gunicorn worker (1: sync workers; more: gthread).", positive=True
    )
    web_max_requests: int = setting(
        1000, "Requests a gunicorn worker serves before it is replaced (0: never)."
    )
    web_max_requests_jitter: int = setting(
        100, "Random extra requests per worker before it is replaced, so workers do not restart together."
    )
    web_graceful_timeout: int = setting(
        30, "Seconds a web process lets requests in flight finish after SIGTERM.", positive=True
    )
    web_timeout: int = setting(
        60, "Seconds before gunicorn kills a worker stuck on one request.", positive=True
    )
    web_forwarded_allow_ips: str = setting(
        "127.0.0.1", "Proxies whose X-Forwarded-* headers gunicorn trusts (comma list, or *)."
    )
    log_level: str = setting("INFO", "Root log level.")
    log_format: str = setting("json", "`json` (one object per line) or `text`.", choices=("json", "text"))
    access_log: bool = setting(True, "Log one line per request.")
    bus_namespace: str = setting("logistics", "Prefix of every exchange and queue name.")
    bus_prefetch: int = setting(32, "Unacked messages a consumer may hold (prefetch count).", positive=True)
    bus_max_attempts: int = setting(5, "Handler attempts before a message is dead-lettered.", positive=True)
    bus_retry_delays: str = setting("1,5,30", "Seconds between attempts (comma list; the last repeats).")
    bus_confirm_timeout: float = setting(
        5.0, "Seconds to wait for publisher confirms of a batch.", positive=True
    )
    bus_heartbeat: int = setting(20, "AMQP heartbeat interval in seconds (0 disables).")
    outbox_batch_size: int = setting(
        200, "Outbox rows the relay claims and confirms per batch.", positive=True
    )
    outbox_poll_seconds: float = setting(
        1.0, "Relay poll interval when no notification arrives.", positive=True
    )
    outbox_retention_hours: float = setting(168.0, "Published outbox rows older than this are deleted.")
    outbox_metrics_seconds: float = setting(
        5.0,
        "How often the worker reads the outbox backlog and oldest unsent age from the database.",
        positive=True,
    )
    queue_metrics_seconds: float = setting(
        15.0,
        "How often the worker reads its queues' depth and consumers from the broker (passive declare).",
        positive=True,
    )
    # The bound lives in a RabbitMQ policy (``logistics broker-policy``), not in queue arguments:
    # the parking queue is already declared without them, and RabbitMQ refuses a re-declaration
    # with different arguments, whereas a policy changes a live queue in place.
    unrouted_max_length: int = setting(
        10000,
        "Events the unrouted parking queue keeps (policy max-length; the oldest are dropped beyond).",
        positive=True,
    )
    unrouted_ttl_seconds: int = setting(
        7 * 24 * 3600, "Seconds a parked unrouted event is kept (policy message-ttl).", positive=True
    )
    rabbitmq_management_url: str = setting(
        "",
        "RabbitMQ management API (http://user:pass@host:15672): workers apply the unrouted queue's "
        "policy at start-up and export ready/unacknowledged counts, `logistics broker-policy` "
        "applies it; empty: no API counts, and the command prints the rabbitmqctl command.",
    )
    worker_health_port: int = setting(0, "Worker health/metrics port (0: the web port + 100).")
    cache_local_seconds: float = setting(2.0, "In-process read cache lifetime (0 disables it).")
    cache_shared_seconds: int = setting(300, "Redis read cache lifetime (needs LOGISTICS_REDIS_URL).")
    secrets_key: str = setting(
        "",
        "Fernet key(s) that encrypt stored secrets (webhook signing and carrier secrets), comma-"
        "separated: the first encrypts, every one decrypts (rotation). Required off the embedded "
        "default, where one is generated under the var directory.",
    )
    webhook_allow_http: bool = setting(
        False, "Let webhook endpoints use plain http:// URLs (else https only)."
    )
    webhook_allow_networks: str = setting(
        "",
        "Comma-separated CIDRs webhooks may be sent to although they are loopback/private "
        "(e.g. 127.0.0.0/8 for a local receiver); empty: public addresses only.",
    )
    webhook_connect_timeout: float = setting(5.0, "Seconds to connect to a webhook endpoint.", positive=True)
    webhook_read_timeout: float = setting(
        15.0, "Seconds to wait for a webhook endpoint's answer.", positive=True
    )
    webhook_max_response_bytes: int = setting(
        65_536, "Most bytes of a webhook endpoint's answer the dispatcher reads.", positive=True
    )
    webhook_endpoint_concurrency: int = setting(
        4, "Deliveries in flight to one webhook endpoint at once, per dispatcher.", positive=True
    )
    webhook_max_in_flight: int = setting(
        2000, "Deliveries in flight at once in one dispatcher process.", positive=True
    )
    webhook_retry_schedule: str = setting(
        "5,300,1800,7200,18000,36000,36000",
        "Seconds before each retry of a failed webhook delivery (comma list; about a day in all); "
        "each delay gets up to 10% jitter, and after the last the delivery is failed.",
    )
    webhook_disable_after_hours: float = setting(
        72.0, "An endpoint whose deliveries have failed without a success for this long is disabled."
    )
    webhook_secret_grace_hours: float = setting(
        24.0, "After a secret rotation, how long the old secret still signs (both signatures are sent)."
    )
    webhook_retention_days: float = setting(30.0, "Finished webhook deliveries older than this are deleted.")
    webhook_poll_seconds: float = setting(
        1.0, "Longest the dispatcher sleeps before looking for due deliveries.", positive=True
    )
    dispatcher_health_port: int = setting(0, "Dispatcher health/metrics port (0: the web port + 200).")
    # Rate limits (web/ratelimit.py, web/ratelimit_settings.py): requests per caller (token
    # subject, or client address) and route class per window, counted in Redis for every replica.
    rate_limits_enabled: bool = setting(
        True, "Limit requests per caller and route class (429 beyond the quota); false: no limiter at all."
    )
    rate_limit_storage_url: str = setting(
        "",
        "Where the limiter counts: redis://... (shared by every replica), or memory:// (each process "
        "its own budget); empty: LOGISTICS_REDIS_URL, else memory://.",
    )
    rate_limit_key_prefix: str = setting(
        "logistics-ratelimit", "Prefix of the limiter's Redis keys: one per deployment sharing a Redis."
    )
    rate_limit_timeout: float = setting(
        0.05,
        "Seconds the limiter waits for Redis (connect and answer); beyond it, or on any Redis error, "
        "the request goes through unlimited (fail open).",
        positive=True,
    )
    rate_limit_sync_seconds: float = setting(
        0.1,
        "Longest a web process counts a caller's requests itself before adding them to Redis "
        "(0: every request counts in Redis at once); the last tenth of a quota always counts at once.",
    )
    rate_limit_window_seconds: int = setting(
        60, "The window every quota counts over, in seconds.", positive=True
    )
    rate_limit_admin_read: int = setting(
        6000, "GET/HEAD requests an admin token may make per window (0: unlimited)."
    )
    rate_limit_admin_write: int = setting(
        3000, "Other requests an admin token may make per window (0: unlimited)."
    )
    rate_limit_warehouse_staff_read: int = setting(
        3000, "GET/HEAD requests per window of a warehouse_staff token."
    )
    rate_limit_warehouse_staff_write: int = setting(
        1200, "Other requests per window of a warehouse_staff token."
    )
    rate_limit_support_agent_read: int = setting(
        3000, "GET/HEAD requests per window of a support_agent token."
    )
    rate_limit_support_agent_write: int = setting(1200, "Other requests per window of a support_agent token.")
    rate_limit_service_read: int = setting(12000, "GET/HEAD requests per window of a service token.")
    rate_limit_service_write: int = setting(6000, "Other requests per window of a service token.")
    rate_limit_anonymous_read: int = setting(
        600, "GET/HEAD requests per window without a valid token, per client address."
    )
    rate_limit_anonymous_write: int = setting(
        120, "Other requests per window without a valid token, per client address."
    )
    rate_limit_webhook: int = setting(
        6000, "Signed inbound webhook requests (carrier tracking) per window and sender, once verified."
    )
    #: The service's own settings (an instance of its ``ServiceSpec.settings``), or None.
    own: Any = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.bus_retry_delays.split(","))

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_schedule.split(","))


#: The settings every service shares. README's configuration table lists these and
#: each service's own (``tests/shared/test_settings.py`` checks that it does).
SPECS: tuple[Spec, ...] = specs(Settings)
_SPECS_BY_KEY = {spec.key: spec for spec in SPECS}


def spec_for(key: str) -> Spec:
    return _SPECS_BY_KEY[key]


def env_name(spec: Spec, service: str) -> str:
    return spec.env.replace("{svc}", service.upper())


def _own_settings(service: str) -> type | None:
    from .service import discover

    found = discover().get(service)
    return found.settings if found is not None else None


def _read(
    declared: tuple[Spec, ...], service: str, ini: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in declared:
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
    for spec in declared:
        value = values[spec.key]
        if spec.positive and value <= 0:
            raise SettingsError(f"setting {spec.key!r} ({env_name(spec, service)}): must be positive")
        if spec.choices and value not in spec.choices:
            raise SettingsError(
                f"setting {spec.key!r} ({env_name(spec, service)}): expected {' or '.join(spec.choices)}"
            )
    return values


def load_settings(
    service: str,
    ini: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    own: type | None = None,
) -> Settings:
    """Merge defaults, ``.ini`` values (``logistics.<key>`` or ``<key>``) and environment.

    ``own`` is the service's own settings dataclass; by default the installed
    service's ``ServiceSpec.settings``. Raises :class:`SettingsError` naming the
    setting when a value is malformed or a required one is missing.
    """
    ini = dict(ini or {})
    environ = os.environ if environ is None else environ
    values = _read(SPECS, service, ini, environ)
    own = own if own is not None else _own_settings(service)
    own_specs = specs(own) if own is not None else ()
    own_values = own(**_read(own_specs, service, ini, environ)) if own is not None else None
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{Path(values['var_dir']) / f'{service}.sqlite3'}"
    _validate(values, service)
    known = {f.name for f in fields(Settings)} | {spec.key for spec in own_specs}
    extra = {k: v for k, v in ini.items() if k not in known and isinstance(v, str)}
    return Settings(service=service, extra=extra, own=own_values, **values)


def _validate(values: dict[str, Any], service: str) -> None:
    url = values["database_url"]
    if not url.split(":", 1)[0].startswith(("sqlite", "postgresql", "postgres")):
        raise SettingsError(
            f"setting 'database_url' ({env_name(_SPECS_BY_KEY['database_url'], service)}): "
            f"unsupported URL scheme in {url.split(':', 1)[0]!r}; use postgresql:// or sqlite:///"
        )
    if values["jwt_algorithm"] != "HS256" and not values["jwt_public_key_file"]:
        raise SettingsError(
            "setting 'jwt_public_key_file' (LOGISTICS_JWT_PUBLIC_KEY_FILE) is required "
            f"with {values['jwt_algorithm']}"
        )
    if values["jwt_algorithm"] == "HS256" and values["jwt_secret"]:
        _check_secret_length(values["jwt_secret"], "setting 'jwt_secret' (LOGISTICS_JWT_SECRET)")
    for key in ("bus_retry_delays", "webhook_retry_schedule"):
        _check_seconds_list(values[key], key)
    from .web.ratelimit_settings import check_rate_limit_settings

    check_rate_limit_settings(values)
    if values["webhook_allow_networks"].strip():
        # At start-up, not at the first webhook request: a typo must not wait for one.
        from .webhooks.addresses import parse_networks

        parse_networks(values["webhook_allow_networks"])


def _check_seconds_list(raw: str, key: str) -> None:
    try:
        seconds = [float(part) for part in raw.split(",")]
    except ValueError:
        seconds = []
    if not seconds or any(d <= 0 for d in seconds):
        raise SettingsError(f"setting {key!r} (LOGISTICS_{key.upper()}): a comma list of positive seconds")


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

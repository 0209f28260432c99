"""A logged database or broker failure carries the driver's own message, on one line,
without the statement's parameters or a URL's password: a table of representative
exceptions through describe_error, and through the log lines of the relay, the consumer,
the cache and the web readiness probe."""

from __future__ import annotations

import logging
import threading
from typing import Any

import amqp.exceptions
import kombu.exceptions
import psycopg
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc
from webtest import TestApp

from logistics_shared.bus.consumer import EventConsumer
from logistics_shared.bus.relay import OutboxRelay
from logistics_shared.cache import TwoLevelCache
from logistics_shared.logs import JsonFormatter, describe_error, redact

from ..conftest import make_settings
from ..helpers.bus import wait_until

TOO_MANY = (
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    "FATAL:  sorry, too many clients already"
)


def _wrapped(orig: Exception) -> sa_exc.OperationalError:
    """What SQLAlchemy raises around a psycopg error (statement and parameters included)."""
    return sa_exc.OperationalError("SELECT * FROM outbox WHERE x = %(x)s", {"x": "row-secret"}, orig)


#: (exception, words the line must hold, words it must not).
CASES: list[tuple[str, BaseException, tuple[str, ...], tuple[str, ...]]] = [
    (
        "psycopg OperationalError wrapped by SQLAlchemy",
        _wrapped(psycopg.OperationalError(TOO_MANY)),
        ("OperationalError", "too many clients already"),
        ("row-secret", "SELECT", "sqlalche.me"),
    ),
    (
        "SQLAlchemy pool timeout",
        sa_exc.TimeoutError(
            "QueuePool limit of size 10 overflow 10 reached, connection timed out, timeout 3.00", code="3o7r"
        ),
        ("QueuePool limit of size 10 overflow 10 reached",),
        ("sqlalche.me",),
    ),
    (
        "kombu connection error",
        kombu.exceptions.OperationalError("[Errno 111] Connection refused"),
        ("OperationalError", "Connection refused"),
        (),
    ),
    (
        "amqp access refused",
        amqp.exceptions.AccessRefused("Login was refused using authentication mechanism PLAIN."),
        ("AccessRefused", "Login was refused"),
        (),
    ),
    (
        "socket reset",
        ConnectionResetError(104, "Connection reset by peer"),
        ("ConnectionResetError", "Connection reset by peer"),
        (),
    ),
    ("socket timeout", TimeoutError("timed out"), ("timed out",), ()),
    (
        "redis connection error",
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6399. Connection refused."),
        ("ConnectionError", "Connection refused"),
        (),
    ),
    (
        "a URL with a password in the message",
        kombu.exceptions.OperationalError("cannot reach amqp://guest:hunter2@broker:5672//"),
        ("amqp://guest:***@broker:5672//",),
        ("hunter2",),
    ),
    (
        "a libpq connection string with a password",
        psycopg.OperationalError("invalid dsn: host=db password=hunter2 dbname=x"),
        ("invalid dsn", "password=***"),
        ("hunter2",),
    ),
]
IDS = [case[0] for case in CASES]


def _check(line: str, present: tuple[str, ...], absent: tuple[str, ...]) -> None:
    for word in present:
        assert word in line, f"{word!r} missing from {line!r}"
    for word in absent:
        assert word not in line, f"{word!r} leaked into {line!r}"
    assert "\n" not in line


@pytest.mark.parametrize(("name", "error", "present", "absent"), CASES, ids=IDS)
def test_describe_error_keeps_the_driver_message(name, error, present, absent):
    _check(describe_error(error), present, absent)


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    formatter = JsonFormatter()
    return [formatter.format(record) for record in caplog.records if record.name == logger]


def _run_until_logged(caplog, logger: str, loop: Any) -> str:
    """Run ``loop(stop)`` in a thread until ``logger`` logged a warning; that line."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    with caplog.at_level(logging.WARNING, logger=logger):
        thread.start()
        try:
            wait_until(lambda: bool(_lines(caplog, logger)), timeout=10, what=f"a warning from {logger}")
        finally:
            stop.set()
            thread.join(10)
        return _lines(caplog, logger)[0]


def _raising(error: BaseException) -> Any:
    def connect() -> Any:
        raise error

    return connect


@pytest.mark.parametrize(("name", "error", "present", "absent"), CASES, ids=IDS)
def test_the_relay_logs_the_driver_message(service_client, caplog, name, error, present, absent):
    client = service_client("inventory")
    relay = OutboxRelay(
        service="inventory",
        settings=client.settings,
        session_factory=client.registry["dbsession_factory"],
        outbox=client.registry["logistics.platform_tables"].outbox,
        metrics=client.registry["logistics.metrics"].bus,
        connect=_raising(error),
    )
    line = _run_until_logged(caplog, "logistics_shared.bus.relay", relay.run)
    assert "outbox relay interrupted" in line
    _check(line, present, absent)


@pytest.mark.parametrize(("name", "error", "present", "absent"), CASES, ids=IDS)
def test_the_consumer_logs_the_driver_message(service_client, caplog, name, error, present, absent):
    client = service_client("inventory")
    spec = client.registry["logistics.service"]
    consumer = EventConsumer(
        service="inventory",
        settings=client.settings,
        session_factory=client.registry["dbsession_factory"],
        platform=client.registry["logistics.platform_tables"],
        handlers=spec.handlers(),
        metrics=client.registry["logistics.metrics"].bus,
        connect=_raising(error),
    )
    line = _run_until_logged(caplog, "logistics_shared.bus.consumer", consumer.run)
    assert "consumer interrupted" in line
    _check(line, present, absent)


def test_the_cache_logs_the_redis_message(caplog):
    """A real redis-py error: nothing listens on port 1."""
    cache = TwoLevelCache("tracking", redis_url="redis://:hunter2@127.0.0.1:1/0", local_ttl=0)
    with caplog.at_level(logging.WARNING, logger="logistics_shared.cache"):
        assert cache.get("key", lambda: "loaded") == "loaded"
    _check(_lines(caplog, "logistics_shared.cache")[0], ("ConnectionError", "refused"), ("hunter2",))


def test_web_readiness_logs_why_the_database_is_unreachable(specs, tmp_path, caplog):
    """A real driver error: nothing listens on port 1. The public body names the class only."""
    spec = specs["inventory"]
    settings = make_settings(
        "inventory", "postgresql://postgres:hunter2@127.0.0.1:1/nowhere", tmp_path, db_connect_timeout=1
    )
    app = TestApp(spec.configure(settings).make_wsgi_app())
    with caplog.at_level(logging.WARNING, logger="logistics_shared.web.ops"):
        body = app.get("/readyz", status=503).json
    assert body["error"] == "OperationalError"
    line = _lines(caplog, "logistics_shared.web.ops")[0]
    _check(line, ("database unreachable", "OperationalError", "refused"), ("hunter2",))


def test_redact_leaves_other_text_alone():
    assert (
        redact("connection to server at 127.0.0.1:5432 failed")
        == "connection to server at 127.0.0.1:5432 failed"
    )

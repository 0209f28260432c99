"""JSON logs with the request id on every line, not only the access log."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def _is_console_handler(handler: logging.Handler) -> bool:
    # Exactly StreamHandler: pytest's capture handlers and file handlers subclass it and stay.
    return type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Idempotent: the last call wins (``up`` configures once for every service).

    The root logger's console output is ours alone: pserve runs ``logging.basicConfig()``
    (or the .ini's ``[handlers]``) before it loads the app, and a second console handler
    would print every line twice. Handlers that write elsewhere (files, syslog) stay.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_logistics", False) or _is_console_handler(old):
            root.removeHandler(old)
    handler._logistics = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Alembic announces each of its built-in plugins at INFO when it is first imported, which
    # a web process now does for /readyz's schema check: start-up noise, not events.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

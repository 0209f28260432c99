"""JSON logs with the request id on every line, not only the access log."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


#: ``scheme://user:password@`` in a URL; the password is replaced.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")
#: ``password=...`` in a libpq connection string.
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
#: Longest driver message kept in a log line.
MAX_ERROR_CHARS = 500


def redact(text: str) -> str:
    """``text`` with the passwords of URLs and connection strings replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)


def describe_error(exc: BaseException) -> str:
    """``ClassName: the driver's message``, on one line, passwords redacted: what a log
    line about a database or broker failure must say (the class name alone says nothing).

    A SQLAlchemy ``DBAPIError`` carries the driver's exception in ``orig``: its text is
    PostgreSQL's own ("sorry, too many clients already"), without the SQL statement and
    its parameters that ``str()`` of the wrapper adds. Other SQLAlchemy errors give their
    message without the link to the error's documentation page.
    """
    from sqlalchemy.exc import SQLAlchemyError

    orig = getattr(exc, "orig", None)
    source: BaseException = orig if isinstance(orig, BaseException) else exc
    if source is exc and isinstance(exc, SQLAlchemyError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = str(source)
    message = redact(" ".join(text.split()))
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    return f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__


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

"""``logistics serve``: the production web server, gunicorn, configured from settings.

One process per core (waitress threads share one GIL), the app built once in the
master (``preload_app``) exactly as ``up`` and ``pserve`` build it, workers recycled
after ``max_requests`` (with jitter, so they do not all restart together), SIGTERM
handled by gunicorn's master: stop accepting, let workers finish their requests for
up to ``graceful_timeout``, exit 0.

Metrics: with several processes, each keeps its own counters, so prometheus-client's
multiprocess mode is on: every process writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (one directory per server, emptied at start), and
``/metrics`` of any worker sums them all. A worker that exits is marked dead
(``child_exit``): its live gauges drop out, its counters stay in the sums. The process
and GC collectors do not work in this mode; each worker samples itself instead
(``logistics_web_process_*``, ``logistics_web_python_gc_*``: process_metrics.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from ..settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_metrics(directory: Path) -> Path:
    """Empty ``directory`` and switch prometheus-client to multiprocess mode.

    Must run before any metric is created: a metric picks its value class when it is
    built, and the samples of a previous run (dead pids) must not be summed in.
    """
    from prometheus_client import values

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()
    return directory


def default_workers() -> int:
    return os.cpu_count() or 1


class GunicornServer(BaseApplication):
    """gunicorn's custom-application API: options from settings, the app from ``load``."""

    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Any:
        return self.application


def _post_fork(server: Any, worker: Any) -> None:
    # Until the worker installs its own handlers (after this hook), it still has the
    # master's, which only queue a signal for the master's loop: a SIGTERM from the
    # master's shutdown landing now was lost, and the master waited out the whole graceful
    # timeout for a worker that never started serving. A booting worker may just die.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The app was built in the master: its engines' pools must not be shared across the
    # fork (a connection used by two processes corrupts both); each worker opens its own.
    registry = server.app.application.registry
    for key in ("dbengine", "dbengine_read"):
        engine = registry.get(key)
        if engine is not None:
            engine.dispose(close=False)
    # Process and GC metrics: the collectors do not work in multiprocess mode.
    sampler = getattr(registry.get("logistics.metrics"), "web_process", None)
    if sampler is not None:
        sampler.start()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def options(settings: Settings, bind: str, workers: int | None, threads: int | None) -> dict[str, Any]:
    """gunicorn's settings for one service's web server."""
    count = workers or settings.web_workers or default_workers()
    per_worker = threads or settings.web_threads
    return {
        "bind": bind,
        "workers": count,
        "threads": per_worker,
        # gthread only when threads > 1; sync workers behind a buffering proxy otherwise.
        "worker_class": "gthread" if per_worker > 1 else "sync",
        "preload_app": True,
        "max_requests": settings.web_max_requests,
        "max_requests_jitter": settings.web_max_requests_jitter,
        "graceful_timeout": settings.web_graceful_timeout,
        "timeout": settings.web_timeout,
        "keepalive": 5,
        "forwarded_allow_ips": settings.web_forwarded_allow_ips,
        "limit_request_line": 8190,
        # The app writes its own JSON access log, with the request id, on every line.
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": f"logistics-{settings.service}",
        # No gunicornc control socket: nothing uses it, and in an image the default path
        # (under $HOME) does not exist; several servers on one host would share it.
        "control_socket_disable": True,
        "post_fork": _post_fork,
        "child_exit": _child_exit,
        # gunicorn merges this into its CONFIG_DEFAULTS, whose loggers carry plain-text handlers
        # of their own and propagate to the root too (every line twice, INFO whatever the
        # level). Its loggers get no handlers here: gunicorn.error propagates to the suite's
        # JSON root handler at the configured level; gunicorn.access is silenced, since the
        # app writes the access log itself (with the request id). `root` is left falsy, so
        # dictConfig keeps the suite's handler on it.
        "logconfig_dict": {
            "version": 1,
            "disable_existing_loggers": False,
            "root": {},
            "handlers": {},
            "loggers": {
                "gunicorn.error": {"level": settings.log_level.upper(), "handlers": [], "propagate": True},
                "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            },
        },
    }


def run(
    app: Any, settings: Settings, bind: str, workers: int | None = None, threads: int | None = None
) -> None:
    GunicornServer(app, options(settings, bind, workers, threads)).run()

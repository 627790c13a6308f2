"""gunicorn's side of metrics and logs, used by ``gunicorn.conf.py``.

``prepare_multiprocess_dir`` runs when gunicorn reads its configuration, in
the master, before any worker imports the app (and with it
prometheus-client); ``wipe`` when the server starts, ``worker_exited`` when a
worker dies. ``Logger`` writes gunicorn's own lines (errors and the access
log) in the app's ``LOG_FORMAT``, with ingest tokens redacted.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from gunicorn import glogging

from knock_sources.observability import logs

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Set when the directory was made here, so that it is removed at exit.
OWNED_ENV = "KNOCK_SOURCES_OWNS_METRICS_DIR"


def prepare_multiprocess_dir() -> str:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names a directory; create a private one if unset."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="knock-sources-metrics-")
        os.environ[OWNED_ENV] = "1"
    os.makedirs(path, exist_ok=True)
    return path


def wipe() -> None:
    """Delete the files of a previous run: counters restart with the server, as Prometheus expects."""
    path = os.environ[MULTIPROC_ENV]
    for name in os.listdir(path):
        target = os.path.join(path, name)
        if os.path.isdir(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            os.unlink(target)


def add_metrics_listener(cfg, metrics_bind: str | None) -> None:
    """Add ``metrics_bind`` to gunicorn's addresses; called before it opens its sockets."""
    if metrics_bind and metrics_bind not in cfg.bind:
        cfg.set("bind", [*cfg.bind, metrics_bind])


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def remove_owned_dir() -> None:
    """Remove the directory at shutdown when it was created by ``prepare_multiprocess_dir``."""
    if os.environ.get(OWNED_ENV):
        shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)


class Logger(glogging.Logger):
    """gunicorn's logger with the app's log format and the ingest token out of access lines."""

    def setup(self, cfg):
        """Set up gunicorn's handlers, then give them the app's formatter and context."""
        super().setup(cfg)
        log_format = os.environ.get("KNOCK_SOURCES_LOG_FORMAT", "text")
        for handler in self.error_log.handlers + self.access_log.handlers:
            if log_format == "json":
                handler.setFormatter(logs.json_formatter())
            handler.addFilter(logs.ContextFilter())

    def atoms(self, resp, req, environ, request_time):
        """The access log's fields, with the token of an ingest URL replaced."""
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):
            if isinstance(atoms.get(key), str):
                atoms[key] = logs.redact_path(atoms[key])
        return atoms

"""gunicorn settings for knock-sources: ``gunicorn wsgi:app`` in this directory reads them.

- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set here, in
  the master, before any worker imports the app (a private temporary
  directory unless you set one); it is wiped when the server starts and a dead
  worker's live gauges are dropped in ``child_exit``.
- ``KNOCK_SOURCES_METRICS_BIND`` (``host:port``, e.g. ``127.0.0.1:9464``) adds
  a second listener on which ``GET /metrics`` is answered; ``make run`` sets it.
  The public address never answers it unless ``KNOCK_SOURCES_METRICS_TOKEN`` is
  set and sent as a bearer token.
- gunicorn's own lines follow ``KNOCK_SOURCES_LOG_FORMAT`` (``text`` or ``json``)
  and never show an ingest token.

Anything here can be overridden on the command line (``--workers 4``).
"""

import os

from knock_sources.observability import gunicorn as hooks

hooks.prepare_multiprocess_dir()

accesslog = "-"
logger_class = hooks.Logger


def on_starting(server):
    """Start from an empty metrics directory; listen on the metrics address too (also with ``--bind``)."""
    hooks.wipe()
    hooks.add_metrics_listener(server.cfg, os.environ.get("KNOCK_SOURCES_METRICS_BIND"))


def child_exit(server, worker):
    """Mark the worker's metrics files dead."""
    hooks.worker_exited(worker.pid)


def on_exit(server):
    """Remove a metrics directory made for this server."""
    hooks.remove_owned_dir()

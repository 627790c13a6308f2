"""Who may read metrics, and the small HTTP server each ``flask worker`` serves them on.

Metrics are kept off the public ingest host by default. A web process
answers ``GET /metrics`` only on a request that arrived on the separate
metrics listener (``METRICS_BIND``, which ``gunicorn.conf.py`` binds beside
the public address) or that carries ``Authorization: Bearer <METRICS_TOKEN>``;
anywhere else the route does not exist (404). A worker serves its metrics
on ``WORKER_METRICS_BIND`` (loopback by default), behind the same token when
one is set.
"""

from __future__ import annotations

import hmac
import logging
import threading
from socketserver import ThreadingMixIn
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

ALLOWED, MISSING, UNAUTHORIZED = "allowed", "missing", "unauthorized"


def parse_bind(value: str | None) -> tuple[str, int] | None:
    """Return ``(host, port)`` of a ``host:port`` setting, ``None`` when empty; ``ValueError`` if malformed."""
    if not value:
        return None
    host, sep, port = str(value).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def access(token: str | None, metrics_port: int | None, server_port: str | None, authorization: str | None) -> str:
    """Decide a metrics request: ``allowed``, ``unauthorized`` (bad token) or ``missing`` (not served here).

    ``server_port`` is the port of the listener the request arrived on
    (WSGI's ``SERVER_PORT``, which gunicorn takes from the socket).
    """
    if metrics_port is not None and server_port == str(metrics_port):
        return ALLOWED
    if not token:
        return MISSING
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return ALLOWED
    return UNAUTHORIZED


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        """Scrapes are not worth a log line each."""


def metrics_app(token: str | None, render: Callable[[], bytes]):
    """Return a WSGI app answering every path with the metrics, behind ``token`` when set."""

    def app(environ, start_response):
        if token and access(token, None, None, environ.get("HTTP_AUTHORIZATION")) != ALLOWED:
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"Send the metrics token as 'Authorization: Bearer <token>'.\n"]
        body = render()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve(bind: tuple[str, int], token: str | None, render: Callable[[], bytes]) -> WSGIServer | None:
    """Serve metrics on ``bind`` from a daemon thread; ``None`` (and a warning) if the address is taken.

    A worker that cannot serve metrics still processes events: losing its
    metrics is the lesser harm.
    """
    try:
        server = make_server(bind[0], bind[1], metrics_app(token, render), _Server, _QuietHandler)
    except OSError as exc:
        log.warning("this worker serves no metrics: cannot listen on %s:%s (%s)", bind[0], bind[1], exc)
        return None
    threading.Thread(target=server.serve_forever, name="knock-sources-metrics", daemon=True).start()
    log.info("serving metrics on http://%s:%s/metrics", bind[0], server.server_port)
    return server

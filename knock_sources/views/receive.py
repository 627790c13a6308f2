"""The public ingestion endpoint, authenticated by its unguessable token.

It is the hot path, so the ordinary ``POST`` of a token URL is answered by
``DirectReceive``, a WSGI layer in front of Flask, without Flask's request
machinery (request context, session, URL map, hooks, response object): it
cost several times the ingest work itself. It does what the app's hooks do
for such a request (request id, database connection) and hands any error to
Flask's own handlers, so the answers are the ones the Flask route gives;
whatever it does not recognise as that plain case (another method, a query
string, a path a token cannot have) goes to the Flask route.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Blueprint, g, request
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_content_length, get_input_stream

from knock_sources import ingest, store
from knock_sources.observability import logs
from knock_sources.state import EXTENSION, current_state

if TYPE_CHECKING:
    from flask import Flask

bp = Blueprint("receive", __name__)

PATH_PREFIX = "/integrations/receive/"
# What ``sources.new_token`` makes (token_urlsafe); a path holding anything
# else takes the Flask route, which also refuses what no identifier can hold.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
# Werkzeug keeps these two out of the ``HTTP_`` keys (``EnvironHeaders``).
_BARE_HEADER_KEYS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_SHADOWED_KEYS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})
# What Flask sends with the route's ``"", 204``.
_ACCEPTED_STATUS = "204 NO CONTENT"
_ACCEPTED_HEADERS = (("Content-Type", "text/html; charset=utf-8"),)


def request_headers(environ: dict) -> dict[str, str]:
    """Return the request's headers with lower-cased names, repeated ones joined with ``", "``.

    Read from the WSGI environ as Werkzeug's ``EnvironHeaders`` reads them.
    """
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") and key not in _SHADOWED_KEYS:
            name = key[5:].replace("_", "-").lower()
        elif key in _BARE_HEADER_KEYS and value:
            name = key.replace("_", "-").lower()
        else:
            continue
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def delivery_from_environ(environ: dict, stream) -> ingest.Delivery:
    """Return the plain-value ``Delivery`` of a WSGI request whose body is read from ``stream``."""
    mimetype, params = parse_options_header(environ.get("CONTENT_TYPE", ""))
    return ingest.Delivery(
        headers=request_headers(environ),
        stream=stream,
        content_length=get_content_length(environ),
        mimetype=mimetype.lower(),
        remote_ip=environ.get("REMOTE_ADDR"),
        charset=params.get("charset"),
    )


def delivery_from_request(http_request) -> ingest.Delivery:
    """Return the plain-value ``Delivery`` of a Werkzeug request."""
    return delivery_from_environ(http_request.environ, http_request.stream)


@bp.post("/integrations/receive/<token>")
def receive(token):
    """Accept one event: 204 once it is durably logged (see ``ingest.receive``)."""
    ingest.receive(current_state(), token, delivery_from_request(request))
    return "", 204


class DirectReceive:
    """WSGI middleware: answers ``POST /integrations/receive/<token>`` itself, everything else goes to ``wsgi_app``.

    Installed as ``app.wsgi_app`` (so the test client goes through it too).
    """

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response):
        """Handle one WSGI request."""
        path = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or not path.startswith(PATH_PREFIX)
            or environ.get("QUERY_STRING")
            or not _TOKEN.fullmatch(path, len(PATH_PREFIX))
        ):
            return self.wsgi_app(environ, start_response)
        # What the app's before_request hooks do, in their order (logs, then the connection).
        request_id = logs.start_request(environ.get("HTTP_X_REQUEST_ID"))
        opened = False
        try:
            opened = store.db.connect(reuse_if_open=True)
            stream = get_input_stream(environ, max_content_length=self.app.config["MAX_CONTENT_LENGTH"])
            ingest.receive(
                self.app.extensions[EXTENSION], path[len(PATH_PREFIX) :], delivery_from_environ(environ, stream)
            )
        except Exception as exc:
            return self._error(exc, environ, request_id)(environ, start_response)
        finally:
            if opened and not store.db.is_closed():
                store.db.close()
        start_response(_ACCEPTED_STATUS, [*_ACCEPTED_HEADERS, (logs.REQUEST_ID_HEADER, request_id)])
        return []

    def _error(self, exc: Exception, environ: dict, request_id: str):
        """The response Flask's error handlers and after_request hooks make of ``exc`` (rare, so not lean)."""
        app = self.app
        with app.request_context(environ):
            g.request_id = request_id
            try:
                try:
                    raise exc
                except Exception as error:
                    # handle_user_exception re-raises what no handler takes, as Flask's dispatch expects.
                    return app.finalize_request(app.handle_user_exception(error))
            except Exception as error:
                return app.handle_exception(error)


def install(app: Flask) -> None:
    """Put ``DirectReceive`` in front of the app's WSGI callable."""
    app.wsgi_app = DirectReceive(app, app.wsgi_app)  # type: ignore[method-assign]

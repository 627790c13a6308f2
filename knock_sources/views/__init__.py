"""Blueprints, the checks every request passes, and the error handlers that turn errors into JSON responses.

Every response is strict JSON (``StrictJSONProvider``), and a URL whose path
or query string holds what no identifier can (``store.unstorable``) is
refused before any view runs, so no route can hand one to a query.
"""

import logging

from flask import jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS
from marshmallow import ValidationError
from peewee import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from knock_sources.errors import PayloadError, SourcesError, ValidationFailed
from knock_sources.store import unstorable
from knock_sources.views import api, health, metrics, openapi, receive, tracking, ui

log = logging.getLogger(__name__)


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider without ``NaN`` and ``Infinity``, which strict JSON parsers reject."""

    def dumps(self, obj, **kwargs):
        """Serialise ``obj``; a non-finite number is an error here rather than in the client's parser."""
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


def refuse_unstorable_url():
    """Refuse a path or query parameter holding a NUL or a lone surrogate: 400 for the path, 422 for the query."""
    problem = unstorable(request.path)
    if problem:
        raise PayloadError(f"The URL path holds {problem}, which no identifier can.", code="invalid_path")
    for name, value in request.args.items(multi=True):
        problem = unstorable(name) or unstorable(value)
        if problem:
            raise ValidationFailed({name: [f"holds {problem}, which no value can."]}, location="query")


def init_app(app):
    """Install the JSON provider, the URL check, the blueprints and the error handlers."""
    app.json = StrictJSONProvider(app)
    app.before_request(refuse_unstorable_url)
    app.register_blueprint(receive.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(tracking.bp)
    # Browsers call the tracking API cross-origin (analytics.js); only the configured origins may.
    CORS(
        app,
        resources={r"/segment/*": {"origins": app.config["SEGMENT_CORS_ORIGINS"]}},
        methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding", "X-Retry-Count"],
        max_age=86400,
    )
    ui.init_app(app)
    receive.install(app)

    @app.errorhandler(SourcesError)
    def _sources_error(exc):
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(ValidationError)
    def _validation_error(exc):
        error = ValidationFailed(exc.messages)
        return jsonify(error.to_dict()), error.status

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(exc):
        log.error("database unavailable: %s", exc)
        body = {"code": "database_unavailable", "message": "The database is unavailable; retry later."}
        return jsonify(body), 503

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"code": code, "message": exc.description}), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error")
        return jsonify({"code": "internal_error", "message": "An internal error occurred."}), 500

"""Blueprints and the error handlers that turn errors into JSON responses."""

import logging

from flask import jsonify
from flask_cors import CORS
from marshmallow import ValidationError
from peewee import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from knock_sources.errors import SourcesError, ValidationFailed
from knock_sources.views import api, health, metrics, openapi, receive, tracking, ui

log = logging.getLogger(__name__)


def init_app(app):
    """Register the blueprints and error handlers."""
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

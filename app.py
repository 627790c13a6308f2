"""The knock-sources application factory."""

import os

from flask import Flask

from knock_sources import cli, config, state, views
from knock_sources.observability import logs
from knock_sources.store import schema


def create_app(test_config=None):
    """Create and configure the knock-sources Flask application."""
    # templates/ and static/ sit beside this module, in the repository and installed alike.
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.DEFAULTS)
    if test_config is None:
        app.config.from_prefixed_env("KNOCK_SOURCES")
    else:
        app.config.update(test_config)
    if not app.config["DATABASE_URL"]:
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{os.path.join(app.instance_path, 'knock_sources.db')}"
    config.normalise(app.config)
    config.validate_config(app.config)
    logs.init_app(app)
    schema.init_app(app)
    state.init_app(app)
    views.init_app(app)
    cli.init_app(app)
    return app

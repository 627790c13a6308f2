"""WSGI entry point: ``gunicorn wsgi:app``; also how ``flask`` finds the app."""

import os

from app import create_app
from knock_sources import config

app = create_app()

# A server is starting (the flask CLI, which imports this module for every
# command, --help included, sets FLASK_RUN_FROM_CLI): say it once, here;
# `flask worker` says it when it starts.
if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
    config.warn_if_insecure(app.config, app.logger)

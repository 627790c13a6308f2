"""The public ingestion endpoint, authenticated by its unguessable token."""

from flask import Blueprint, current_app, request

from knock_sources import ingest
from knock_sources.ingest.cache import get_cache
from knock_sources.plugins import get_registry

bp = Blueprint("receive", __name__)


@bp.post("/integrations/receive/<token>")
def receive(token):
    """Accept one event: 204 once it is durably logged (see ``ingest.receive``)."""
    # The real request object, not the context-local proxy: the pipeline
    # reads it a dozen times and each proxy lookup costs a microsecond or two.
    ingest.receive(get_registry(), current_app.config, get_cache(), token, request._get_current_object())
    return "", 204

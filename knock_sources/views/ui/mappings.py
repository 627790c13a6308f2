"""A source environment's mappings: grouped by event type, switched on and off, edited."""

from __future__ import annotations

from itertools import groupby

from flask import Blueprint, render_template

from knock_sources.state import current_state
from knock_sources.store.control import Mapping
from knock_sources.views.ui.common import source_environment

bp = Blueprint("mappings", __name__)


@bp.get("/<env>/sources/<key>/mappings")
def index(key):
    """The mappings, grouped by event type, in the order they run."""
    source, source_env = source_environment(key)
    rows = Mapping.select().where(Mapping.source_environment == source_env).order_by(Mapping.event_type, Mapping.id)
    groups = [(event_type, list(mappings)) for event_type, mappings in groupby(rows, key=lambda row: row.event_type)]
    provider = current_state().registry.providers.get(source.provider)
    return render_template(
        "mappings/index.html", source=source, source_env=source_env, groups=groups, provider=provider
    )

"""``/v1/sources``: sources, their known events, logs and status."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, jsonify, request

from knock_sources.control import event_logs, sources
from knock_sources.errors import NotFound
from knock_sources.state import current_state
from knock_sources.store import REJECTED, isoformat, utcnow
from knock_sources.store.control import EventLog, KnownEvent, Mapping, Source
from knock_sources.views.api.common import current_environment, json_body, paginate, row_id
from knock_sources.views.api.schemas import LogQuerySchema, SourceBodySchema, envelope_schema
from knock_sources.views.api.shapes import (
    serialize_action_log,
    serialize_event_log,
    serialize_known_event,
    serialize_source,
)

bp = Blueprint("sources", __name__)

source_body_schema = envelope_schema("source", SourceBodySchema)
log_query_schema = LogQuerySchema()
STATUS_WINDOW = timedelta(days=30)


def _source_environment(key):
    source = sources.get_source(key)
    return source, sources.get_source_environment(source, current_environment())


@bp.get("/sources")
def list_sources():
    """List sources with the requested environment's settings."""
    environment = current_environment()
    registry, config = current_state().registry, current_state().config
    return jsonify(
        paginate(
            Source.select(),
            Source.id,
            lambda source: serialize_source(registry, config, source, environment),
        )
    )


@bp.get("/sources/<key>")
def get_source(key):
    """Return one source."""
    source = sources.get_source(key)
    return jsonify(serialize_source(current_state().registry, current_state().config, source, current_environment()))


@bp.put("/sources/<key>")
def put_source(key):
    """Create or update a source (Knock's upsert)."""
    body = json_body(source_body_schema)["source"]
    registry, config = current_state().registry, current_state().config
    source = sources.upsert_source(registry, config, key, body)
    current_state().cache.clear()
    return jsonify(serialize_source(registry, config, source, current_environment()))


@bp.delete("/sources/<key>")
def delete_source(key):
    """Delete a source with its environments, mappings and logs."""
    sources.get_source(key).delete_instance(recursive=False)
    current_state().cache.clear()
    return "", 204


@bp.get("/sources/<key>/events")
def list_events(key):
    """List the distinct event types this source environment has received."""
    _, source_env = _source_environment(key)
    query = KnownEvent.select().where(KnownEvent.source_environment == source_env)
    return jsonify(paginate(query, KnownEvent.id, serialize_known_event))


@bp.get("/sources/<key>/logs")
def list_logs(key):
    """List event logs, newest first, with filters and cursor pagination."""
    _, source_env = _source_environment(key)
    filters = log_query_schema.load(
        {name: request.args[name] for name in log_query_schema.fields if name in request.args}
    )
    query = event_logs.filtered(source_env, **filters)
    with_actions = "actions" in request.args.getlist("include[]")
    page = paginate(query, EventLog.id, serialize_event_log)
    if with_actions:
        _attach_actions(page["entries"])
    return jsonify(page)


@bp.get("/sources/<key>/logs/<log_id>")
def get_log(key, log_id):
    """Return one event log with its action logs."""
    log_id = row_id(log_id)
    _, source_env = _source_environment(key)
    event_log = event_logs.get(source_env, log_id)
    if event_log is None:
        raise NotFound(f"Log {log_id} does not exist.", code="log_missing")
    entry = serialize_event_log(event_log)
    _attach_actions([entry])
    return jsonify(entry)


@bp.get("/sources/<key>/status")
def status(key):
    """Return event counts over the last 30 days and the mapping count."""
    _, source_env = _source_environment(key)
    since = utcnow() - STATUS_WINDOW
    recent = EventLog.select().where((EventLog.source_environment == source_env) & (EventLog.received_at >= since))
    last = (
        EventLog.select(EventLog.received_at)
        .where((EventLog.source_environment == source_env) & (EventLog.status != REJECTED))
        .order_by(EventLog.id.desc())
        .first()
    )
    return jsonify(
        {
            "events_count": recent.where(EventLog.status != REJECTED).count(),
            "rejected_count": recent.where(EventLog.status == REJECTED).count(),
            "last_event_received": isoformat(last.received_at) if last else None,
            "mappings_count": Mapping.select().where(Mapping.source_environment == source_env).count(),
            "mappings_requiring_commit": [],
        }
    )


def _attach_actions(entries: list[dict]) -> None:
    found = event_logs.actions_of([int(entry["id"]) for entry in entries])
    for entry in entries:
        entry["actions"] = [serialize_action_log(action_log) for action_log in found[int(entry["id"])]]

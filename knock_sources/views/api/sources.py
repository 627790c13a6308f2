"""``/v1/sources``: sources, their known events, logs and status."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from knock_sources.control import event_logs, mappings, sources
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.state import current_state
from knock_sources.store import REJECTED, isoformat
from knock_sources.store.control import EventLog, KnownEvent, Mapping, Source
from knock_sources.store.keys import SOURCE_KEY
from knock_sources.views.api.common import current_environment, json_body, paginate, path_key, query_args
from knock_sources.views.api.schemas import (
    LogQuerySchema,
    RotateTokenSchema,
    SourceBodySchema,
    SourcePatchSchema,
    envelope_schema,
)
from knock_sources.views.api.shapes import (
    serialize_action_log,
    serialize_event_log,
    serialize_known_event,
    serialize_source,
)

bp = Blueprint("sources", __name__)

source_body_schema = envelope_schema("source", SourceBodySchema)
source_patch_schema = envelope_schema("source", SourcePatchSchema)
rotate_token_schema = RotateTokenSchema()
log_query_schema = LogQuerySchema()


def source_environment(key):
    """Return the source named in the URL and its configuration in ``?environment=``."""
    source = sources.get_source(path_key(SOURCE_KEY, key))
    return source, sources.get_source_environment(source, current_environment())


def _shown(source):
    return jsonify(serialize_source(current_state(), source, current_environment()))


@bp.get("/sources")
def list_sources():
    """List sources with the requested environment's settings."""
    environment, state = current_environment(), current_state()
    return jsonify(paginate(Source.select(), Source.id, lambda source: serialize_source(state, source, environment)))


@bp.get("/sources/<key>")
def get_source(key):
    """Return one source."""
    return _shown(sources.get_source(path_key(SOURCE_KEY, key)))


@bp.put("/sources/<key>")
def put_source(key):
    """Create or update a source (Knock's upsert)."""
    path_key(SOURCE_KEY, key)
    body = json_body(source_body_schema)["source"]
    source = _saved(lambda: sources.upsert_source(current_state(), key, body))
    return _shown(source)


@bp.patch("/sources/<key>")
def patch_source(key):
    """Change part of a source: its name, an environment's settings, or an environment's ``active`` switch."""
    path_key(SOURCE_KEY, key)
    body = json_body(source_patch_schema)["source"]
    source = _saved(lambda: sources.upsert_source(current_state(), key, body, partial=True))
    return _shown(source)


def _saved(write):
    """Run a write of the ``source`` body; its field errors are reported under ``source``."""
    try:
        result = write()
    except ValidationFailed as error:
        raise error.within("source") from None
    current_state().cache.clear()
    return result


@bp.delete("/sources/<key>")
def delete_source(key):
    """Delete a source with its environments, mappings and logs."""
    sources.get_source(path_key(SOURCE_KEY, key)).delete_instance(recursive=False)
    current_state().cache.clear()
    return "", 204


@bp.post("/sources/<key>/rotate_token")
def rotate_token(key):
    """Give the environment a new URL token; the old one keeps working for the grace period, then 404."""
    body = json_body(rotate_token_schema, optional=True)
    _, source_env = source_environment(key)
    state = current_state()
    sources.rotate_token(source_env, body.get("grace_period_seconds", state.config["TOKEN_GRACE_SECONDS"]))
    state.cache.clear()
    return _shown(source_env.source)


@bp.get("/sources/<key>/events")
def list_events(key):
    """List the distinct event types this source environment has received."""
    _, source_env = source_environment(key)
    query = KnownEvent.select().where(KnownEvent.source_environment == source_env)
    return jsonify(paginate(query, KnownEvent.id, serialize_known_event))


@bp.get("/sources/<key>/logs")
def list_logs(key):
    """List event logs, newest first, with filters and cursor pagination."""
    _, source_env = source_environment(key)
    filters = query_args(log_query_schema)
    query = event_logs.filtered(source_env, **filters)
    with_actions = "actions" in request.args.getlist("include[]")
    page = paginate(query, EventLog.id, serialize_event_log)
    if with_actions:
        _attach_actions(page["entries"])
    return jsonify(page)


@bp.get("/sources/<key>/logs/<row_id:log_id>")
def get_log(key, log_id):
    """Return one event log with its action logs."""
    _, source_env = source_environment(key)
    event_log = event_logs.get(source_env, log_id)
    if event_log is None:
        raise NotFound(f"Log {log_id} does not exist.", code="log_missing")
    entry = serialize_event_log(event_log)
    _attach_actions([entry])
    return jsonify(entry)


@bp.get("/sources/<key>/status")
def status(key):
    """Return event counts over the last 30 days (in whole hours: ``control.hour_counts``) and the mapping count."""
    _, source_env = source_environment(key)
    events_count, rejected_count = current_state().hours.status_counts(source_env.id)
    last = (
        EventLog.select(EventLog.received_at)
        .where((EventLog.source_environment == source_env) & (EventLog.status != REJECTED))
        .order_by(EventLog.id.desc())
        .first()
    )
    return jsonify(
        {
            "events_count": events_count,
            "rejected_count": rejected_count,
            "last_event_received": isoformat(last.received_at) if last else None,
            "mappings_count": Mapping.select().where(Mapping.source_environment == source_env).count(),
            "mappings_requiring_commit": [],
            "missing_workflows": mappings.missing_workflows(current_state().registry, source_env),
        }
    )


def _attach_actions(entries: list[dict]) -> None:
    found = event_logs.actions_of([int(entry["id"]) for entry in entries])
    for entry in entries:
        entry["actions"] = [serialize_action_log(action_log) for action_log in found[int(entry["id"])]]

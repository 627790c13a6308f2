"""``/v1/workflows/{key}/triggers``: a workflow's source-event triggers; also listed from the source's side.

A trigger is addressed by its source and event type,
``/v1/workflows/{key}/triggers/{source}/{event}`` (an event type may hold
slashes, as ``track/user-signed-up`` does). ``?environment=`` chooses the
environment whose active switch a ``PATCH`` of ``active`` changes; the
workflow only has to exist there to create a trigger.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from knock_sources.control import sources, triggers
from knock_sources.state import current_state
from knock_sources.views.api.common import current_environment, json_body
from knock_sources.views.api.schemas import TriggerBodySchema, TriggerUpdateSchema, envelope_schema
from knock_sources.views.api.shapes import serialize_trigger

bp = Blueprint("triggers", __name__)

trigger_body_schema = envelope_schema("trigger", TriggerBodySchema)
trigger_update_schema = envelope_schema("trigger", TriggerUpdateSchema)


def _listing(found, environment) -> dict:
    entries = [serialize_trigger(trigger, environment) for trigger in found]
    return {"entries": entries, "page_info": {"after": None, "before": None, "page_size": len(entries)}}


def _trigger(key, source_key, event):
    return triggers.get_trigger(key, current_environment(), source_key, event)


@bp.get("/workflows/<key>/triggers")
def list_workflow_triggers(key):
    """List the workflow's triggers present in the environment."""
    environment = current_environment()
    return jsonify(_listing(triggers.workflow_triggers(environment, key), environment))


@bp.post("/workflows/<key>/triggers")
def create_workflow_trigger(key):
    """Create a trigger for a source's event, in every environment, enabled."""
    body = json_body(trigger_body_schema)["trigger"]
    environment = current_environment()
    workflow = triggers.get_workflow(environment, key)
    trigger = triggers.create_trigger(current_state().registry, workflow, body)
    return jsonify(serialize_trigger(trigger, environment)), 201


@bp.get("/workflows/<key>/triggers/<source_key>/<path:event>")
def get_workflow_trigger(key, source_key, event):
    """Return one trigger."""
    return jsonify(serialize_trigger(_trigger(key, source_key, event), current_environment()))


@bp.patch("/workflows/<key>/triggers/<source_key>/<path:event>")
def update_workflow_trigger(key, source_key, event):
    """Switch the trigger on or off in this environment, or replace its field mapping everywhere."""
    body = json_body(trigger_update_schema)["trigger"]
    trigger = _trigger(key, source_key, event)
    triggers.update_trigger(current_state().registry, trigger, current_environment(), body)
    return jsonify(serialize_trigger(_trigger(key, source_key, event), current_environment()))


@bp.delete("/workflows/<key>/triggers/<source_key>/<path:event>")
def delete_workflow_trigger(key, source_key, event):
    """Delete the trigger from every environment."""
    triggers.delete_trigger(_trigger(key, source_key, event))
    return "", 204


@bp.get("/sources/<key>/triggers")
def list_source_triggers(key):
    """List the workflow triggers the source's events start, in the environment."""
    environment = current_environment()
    source = sources.get_source(key)
    return jsonify(_listing(triggers.triggers_in(environment, source=source), environment))

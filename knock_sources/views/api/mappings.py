"""``/v1/sources/{key}/mappings``: one mapping at a time, in the environment of ``?environment=``.

Creating, changing and deleting a mapping leaves the environment's other
mappings alone (unlike ``PUT /v1/sources/{key}``, which replaces the list).
Bodies are bare mappings (``{"event_type", "action_type",
"action_parameters", "active"}``); ``PATCH`` takes any of those fields.
Every write is validated against the action's schema (``control.mappings``).
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from knock_sources.control import mappings
from knock_sources.state import current_state
from knock_sources.views.api.common import json_body
from knock_sources.views.api.schemas import MappingFieldsSchema, MappingSchema
from knock_sources.views.api.shapes import serialize_mapping
from knock_sources.views.api.sources import source_environment

bp = Blueprint("mappings", __name__)

mapping_schema = MappingSchema(exclude=("id", "is_deleted"))
mapping_patch_schema = MappingFieldsSchema()


def _provider(source):
    return current_state().registry.providers.get(source.provider)


def _entries(source, rows) -> dict:
    provider = _provider(source)
    entries = [serialize_mapping(mapping, provider) for mapping in rows]
    return {"entries": entries, "page_info": {"after": None, "before": None, "page_size": len(entries)}}


@bp.get("/sources/<key>/mappings")
def list_mappings(key):
    """List the environment's mappings, oldest first."""
    source, source_env = source_environment(key)
    return jsonify(_entries(source, mappings.list_for(source_env)))


@bp.post("/sources/<key>/mappings")
def create_mapping(key):
    """Add one mapping; 201 with the mapping."""
    source, source_env = source_environment(key)
    body = json_body(mapping_schema)
    mapping = mappings.create(current_state().registry, source_env, body)
    return jsonify(serialize_mapping(mapping, _provider(source))), 201


@bp.get("/sources/<key>/mappings/<row_id:mapping_id>")
def get_mapping(key, mapping_id):
    """Return one mapping."""
    source, source_env = source_environment(key)
    return jsonify(serialize_mapping(mappings.get(source_env, mapping_id), _provider(source)))


@bp.patch("/sources/<key>/mappings/<row_id:mapping_id>")
def patch_mapping(key, mapping_id):
    """Change some of a mapping's fields, for example ``{"active": false}``."""
    source, source_env = source_environment(key)
    body = json_body(mapping_patch_schema)
    mapping = mappings.update(current_state().registry, mappings.get(source_env, mapping_id), body)
    return jsonify(serialize_mapping(mapping, _provider(source)))


@bp.delete("/sources/<key>/mappings/<row_id:mapping_id>")
def delete_mapping(key, mapping_id):
    """Delete one mapping."""
    _, source_env = source_environment(key)
    mappings.delete(mappings.get(source_env, mapping_id))
    return "", 204


@bp.post("/sources/<key>/mappings/restore_defaults")
def restore_defaults(key):
    """Re-create the provider's default mappings that were deleted and switch the others back on."""
    source, source_env = source_environment(key)
    return jsonify(_entries(source, mappings.restore_defaults(source_env, _provider(source))))

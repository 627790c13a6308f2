"""``/v1/variables``: account-level variables (secret values are write-only)."""

from flask import Blueprint, jsonify

from knock_sources.control import variables
from knock_sources.state import current_state
from knock_sources.store.control import Variable
from knock_sources.views.api.common import json_body, paginate
from knock_sources.views.api.schemas import VariableBodySchema, envelope_schema
from knock_sources.views.api.shapes import serialize_variable

bp = Blueprint("variables", __name__)

variable_body_schema = envelope_schema("variable", VariableBodySchema)


@bp.get("/variables")
def list_variables():
    """List variables; secret values are never included."""
    return jsonify(paginate(Variable.select(), Variable.id, serialize_variable))


@bp.put("/variables/<key>")
def put_variable(key):
    """Create or update a variable."""
    variables.check_key(key)
    body = json_body(variable_body_schema)["variable"]
    variable = variables.upsert_variable(current_state().config["SECRET_KEY"], key, body)
    current_state().cache.clear()
    return jsonify(serialize_variable(variable))


@bp.delete("/variables/<key>")
def delete_variable(key):
    """Delete a variable and its environment values."""
    variables.delete_variable(key)
    current_state().cache.clear()
    return "", 204

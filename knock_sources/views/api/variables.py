"""``/v1/variables``: account-level variables (secret values are write-only)."""

import re

from flask import Blueprint, jsonify

from knock_sources.control import variables
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import Variable
from knock_sources.views.api.common import json_body, paginate
from knock_sources.views.api.schemas import VariableBodySchema, envelope_schema
from knock_sources.views.api.shapes import serialize_variable

bp = Blueprint("variables", __name__)

variable_body_schema = envelope_schema("variable", VariableBodySchema)
# Keys are used as ``vars.KEY`` in scripts, so they must be identifiers.
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


@bp.get("/variables")
def list_variables():
    """List variables; secret values are never included."""
    return jsonify(paginate(Variable.select(), Variable.id, serialize_variable))


@bp.put("/variables/<key>")
def put_variable(key):
    """Create or update a variable."""
    if not KEY_PATTERN.match(key):
        raise ValidationFailed({"key": ["Use letters, digits and underscores, not starting with a digit."]})
    body = json_body(variable_body_schema)["variable"]
    variable = variables.upsert_variable(current_state().config["SECRET_KEY"], key, body)
    current_state().cache.clear()
    return jsonify(serialize_variable(variable))


@bp.delete("/variables/<key>")
def delete_variable(key):
    """Delete a variable and its environment values."""
    variable = Variable.get_or_none(Variable.key == key)
    if variable is None:
        raise NotFound(f"Variable {key!r} does not exist.", code="variable_missing")
    variable.delete_instance(recursive=True)
    current_state().cache.clear()
    return "", 204

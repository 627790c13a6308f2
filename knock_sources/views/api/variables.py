"""``/v1/variables``: account-level variables (secret values are write-only)."""

from flask import Blueprint, jsonify

from knock_sources.control import variables
from knock_sources.errors import ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import Variable
from knock_sources.store.keys import VARIABLE_KEY
from knock_sources.views.api.common import json_body, paginate, path_key
from knock_sources.views.api.schemas import VariableBodySchema, envelope_schema
from knock_sources.views.api.shapes import serialize_variable

bp = Blueprint("variables", __name__)

variable_body_schema = envelope_schema("variable", VariableBodySchema)


@bp.get("/variables")
def list_variables():
    """List variables; secret values are never included."""
    keyring = current_state().keyring
    return jsonify(paginate(Variable.select(), Variable.id, lambda variable: serialize_variable(variable, keyring)))


@bp.put("/variables/<key>")
def put_variable(key):
    """Create or update a variable."""
    path_key(VARIABLE_KEY, key)
    body = json_body(variable_body_schema)["variable"]
    state = current_state()
    try:
        variable = variables.upsert_variable(state.keyring, key, body)
    except ValidationFailed as error:
        raise error.within("variable") from None
    state.cache.clear()
    return jsonify(serialize_variable(variable, state.keyring))


@bp.delete("/variables/<key>")
def delete_variable(key):
    """Delete a variable and its environment values."""
    variables.delete_variable(path_key(VARIABLE_KEY, key))
    current_state().cache.clear()
    return "", 204

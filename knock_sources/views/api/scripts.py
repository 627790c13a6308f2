"""``/v1/sources/{key}/scripts/test`` and ``/v1/sources/{key}/rehearse``: dry runs that write nothing."""

from flask import Blueprint, jsonify

from knock_sources.control import rehearsal
from knock_sources.errors import ValidationFailed
from knock_sources.ingest.cache import snapshot
from knock_sources.ingest.verification import script_source
from knock_sources.state import current_state
from knock_sources.views.api.common import json_body
from knock_sources.views.api.schemas import RehearseBodySchema, ScriptTestBodySchema
from knock_sources.views.api.sources import source_environment

bp = Blueprint("scripts", __name__)

rehearse_body_schema = RehearseBodySchema()
script_test_body_schema = ScriptTestBodySchema()


def _target(key):
    _, source_env = source_environment(key)
    return source_env, snapshot(source_env, current_state().keyring)


@bp.post("/sources/<key>/scripts/test")
def test_script(key):
    """Run the environment's script (or the one given) on a sample; return output or error."""
    body = json_body(script_test_body_schema)
    source_env, receiving = _target(key)
    source = body["script"]["source"] if body["script"] else script_source(receiving.settings)
    if not source:
        raise ValidationFailed({"script": ["This environment has no script; send one to test."]})
    state = current_state()
    variables = state.cache.variables(receiving.environment_id)
    envelope = rehearsal.sample_envelope(body["payload"])
    return jsonify(rehearsal.try_script(state.scripts, source, envelope, variables))


@bp.post("/sources/<key>/rehearse")
def rehearse(key):
    """Run verification, the script and mapping resolution on a sample payload."""
    body = json_body(rehearse_body_schema)
    source_env, receiving = _target(key)
    envelope = rehearsal.sample_envelope(body["payload"])
    return jsonify(rehearsal.rehearse(current_state(), receiving, source_env, envelope))

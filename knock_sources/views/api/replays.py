"""``/v1/sources/{key}/replay`` and ``/v1/replays/{id}``: replaying stored events (see ``control.replay``)."""

from flask import Blueprint, jsonify, request

from knock_sources.control import replay, replay_selection
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import Replay
from knock_sources.views.api.common import json_body
from knock_sources.views.api.schemas import ReplayBodySchema
from knock_sources.views.api.shapes import serialize_replay
from knock_sources.views.api.sources import source_environment

bp = Blueprint("replays", __name__)

replay_body_schema = ReplayBodySchema()


@bp.post("/sources/<key>/replay")
def replay_source(key):
    """Dry run (200: count and plans) or start a replay (202: the replay) of a source environment's events."""
    if not request.args.get("environment"):
        # Convoy's CLI once replayed every project when none was named.
        raise ValidationFailed({"environment": ["Name the environment whose events to replay."]}, location="query")
    body = json_body(replay_body_schema)
    _, source_env = source_environment(key)
    state = current_state()
    filter_ = replay_selection.normalise_filter(body["filter"])
    if body["dry_run"]:
        return jsonify(replay_selection.dry_run(state, source_env, filter_, body["ignore_idempotency"], body["limit"]))
    created = replay.start(state, replay.create(state, source_env, filter_, body["ignore_idempotency"]))
    return jsonify(serialize_replay(created)), 202


def _replay(replay_id: int) -> Replay:
    found = Replay.get_or_none(Replay.id == replay_id)
    if found is None:
        raise NotFound(f"Replay {replay_id} does not exist.", code="replay_missing")
    return found


@bp.get("/replays/<row_id:replay_id>")
def get_replay(replay_id):
    """Return a replay's progress."""
    return jsonify(serialize_replay(_replay(replay_id)))


@bp.delete("/replays/<row_id:replay_id>")
def cancel_replay(replay_id):
    """Cancel a replay (it stops after its current event); a finished one is returned unchanged."""
    return jsonify(serialize_replay(replay.cancel(_replay(replay_id))))

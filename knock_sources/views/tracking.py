"""The Segment-compatible tracking API, ``/segment/v1/<route>``: point an SDK's host at ``<base>/segment``.

Thin: ``ingest.tracking.receive_calls`` does the work. Acceptance is
exactly ``200 {"success": true}`` (older SDKs retry anything else, 204
included); errors are ``{"code", "message"}`` through the app's error
handler, which every SDK can read.
"""

from flask import Blueprint, jsonify, request

from knock_sources.ingest import tracking
from knock_sources.state import current_state
from knock_sources.views.api.shapes import serialize_tracking_outcome
from knock_sources.views.receive import delivery_from_request

bp = Blueprint("tracking", __name__, url_prefix="/segment/v1")


@bp.post(f"/<any({', '.join(tracking.ROUTES)}):route>")
def call(route):
    """Accept a track, identify, page, screen, group or alias call, or a batch of them."""
    outcome = tracking.receive_calls(current_state(), route, delivery_from_request(request))
    return jsonify(serialize_tracking_outcome(outcome)), 200
